#!/usr/bin/env bash
# End-to-end relay benchmark on loopback: load generator → hermod → sink.
#
# Prints messages per second end to end (from the first message sent until the sink has
# received the last one) and hermod's peak RSS, for each load shape:
#   - smtp-source -s 50 -m 20000 -l 1024       (one message per connection)
#   - smtp-source -s 50 -m 20000 -l 1024 -d    (many messages per connection)
#   - smtp-blaster send -c 50 -m 20000 -k 1    (one per connection, PIPELINING)
#   - smtp-blaster send -c 50 -m 20000 -k 100  (100 per connection, PIPELINING)
#   - postfix-1 / postfix-d: the same two smtp-source shapes against the machine's
#     Postfix, set up the same way (loopback, durable queue, relayhost = the sink).
#     This rewrites /etc/postfix/main.cf and master.cf and starts/stops Postfix: run it
#     only on a scratch machine (CI does not run benchmarks).
#
# hermod runs with its embedded defaults (sled spool, fsync before every 250, info logs
# to a file) and relays everything to the sink through SMTP_RELAYHOST.
#   - nometrics-1: source-1 with metrics off (METRICS_ENABLED=false), to measure what
#     recording them costs; noadmin-1: also without the admin server.
#   - one-1: source-1 with one arbiter (SMTP_WORKER_THREADS=1) whatever the cores: the
#     default on two cores (one per core but one), so there it equals source-1. For two
#     arbiters on two cores, run any shape with SMTP_WORKER_THREADS=2.
#   - postfix-b1 / one-b1: blaster-1's load (smtp-blaster, one message per connection,
#     PIPELINING) against Postfix / hermod with one arbiter.
#   - old-1: source-1 against another hermod binary, $OLD_HERMOD (say, a release build
#     of an earlier commit) with $OLD_CONFIG (that tree's config/hermod.toml), to compare
#     two versions in one run. old-b1: the same with blaster-1's load.
#   - inject-100: the HTTP injection API (issue 22): smtp-blaster inject, $INJECT_C
#     requests at once (4), 100 recipients a request, one message each; compare with
#     source-1 (SMTP, one message per connection). Its "accepted" counts message lines.
#   - events-1: source-1 with delivery events on (a JSON-lines file destination), to
#     measure what keeping and sending events costs intake and delivery.
#   - traced-1: source-1 with every message traced (OpenTelemetry, issue 25) to a
#     collector stand-in on loopback (loadtest/otlp_count.py, which counts the spans it
#     took), to measure what tracing costs; compare with source-1.
#   - ceiling-1: source-1's load straight into the sink, no relay: the pair ceiling, what
#     the load generator and the sink alone reach on these two cores (issue 21's goal for
#     source-1 is 60 % of it). Its "server" figures are the sink's own.
# Usage: loadtest/bench_hermod.sh            N=20000 C=50 SIZE=1024 REPEAT=1 by default
#        SHAPES="postfix-1 source-1" REPEAT=3 loadtest/bench_hermod.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"postfix-1 source-1 postfix-d source-d blaster-1 blaster-100"}
source loadtest/lib.sh

# The hermod a shape runs: $OLD_HERMOD for old-*, else this tree's release build.
hermod_binary() {
  case $1 in
    old-*) echo "${OLD_HERMOD:?set OLD_HERMOD to the hermod binary to compare}" ;;
    *) echo "$BIN/hermod" ;;
  esac
}

# Whether the shape records metrics: nometrics-* runs source-1 with the recorder off.
metrics_enabled() {
  case $1 in
    nometrics-*|noadmin-*) echo false ;;
    *) echo true ;;
  esac
}

# Its configuration: $OLD_CONFIG (the older tree's config/hermod.toml) for old-*.
hermod_config() {
  case $1 in
    old-*) echo "${OLD_CONFIG:-config/hermod.toml}" ;;
    *) echo config/hermod.toml ;;
  esac
}

run_shape() {
  local shape=$1
  local sink_port hermod_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json" "$work/client.time" "$work/sink.time" "$work/events.jsonl"
  # The load generator and the sink run under time(1): their CPU per message is the
  # part of the two cores the relay under test cannot have.
  local timed=(/usr/bin/time -f "%U %S")
  "${timed[@]}" -o "$work/sink.time" "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$N" --json "$work/sink.json" -q &
  local sink_pid=$!
  local hermod_pid
  case $shape in
    postfix-*) start_postfix "$hermod_port" "$sink_port"; hermod_pid=$(cat /var/spool/postfix/pid/master.pid | xargs) ;;
    ceiling-*) hermod_port=$sink_port; hermod_pid=$sink_pid ;;
    *)
      local inject_port otlp_port otlp_pid=
      inject_port=$(free_port); otlp_port=$(free_port)
      case $shape in
        traced-*) PYTHONPATH=${HERMOD_OTLP_PYTHONPATH:-/opt/otlp-python} /usr/bin/python3 loadtest/otlp_count.py "$otlp_port" > "$work/otlp.log" 2>&1 &
          otlp_pid=$!; wait_port "$otlp_port" ;;
      esac
      SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
        HERMOD_HTTP_INJECT_ENABLED="$(case $shape in inject-*) echo true ;; *) echo false ;; esac)" \
        HERMOD_HTTP_INJECT_LISTEN="127.0.0.1:$inject_port" HERMOD_HTTP_INJECT_MAX_RECIPIENTS=100 \
        HERMOD_EVENTS_FILE="$(case $shape in events-*) echo "$work/events.jsonl" ;; esac)" \
        SMTP_ENABLE_TRACING="$(case $shape in traced-*) echo true ;; *) echo false ;; esac)" \
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$otlp_port/v1/traces" \
        SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 METRICS_ENABLED="$(metrics_enabled "$shape")" \
        SMTP_WORKER_THREADS="$(case $shape in one-*) echo 1 ;; *) echo "${SMTP_WORKER_THREADS:-0}" ;; esac)" \
        HERMOD_ADMIN_LISTEN="$(case $shape in noadmin-*) ;; *) echo 127.0.0.1:0 ;; esac)" \
        "$(hermod_binary "$shape")" serve --config "$(hermod_config "$shape")" > "$work/hermod.log" 2>&1 &
      hermod_pid=$! ;;
  esac
  wait_port "$sink_port"; wait_port "$hermod_port"
  : > "$work/rss"
  # Memory of the server under test: hermod's RSS; for Postfix, the PSS summed over all
# its processes.
  ( while kill -0 $hermod_pid 2>/dev/null; do
      case $shape in
        # Postfix is many processes sharing pages: sum their PSS, not their RSS.
        postfix-*) for p in $(pgrep -u postfix) $hermod_pid; do awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null; done | awk '{s+=$1} END {print s}' >> "$work/rss" ;;
        *) ps -o rss= -p $hermod_pid >> "$work/rss" 2>/dev/null || true ;;
      esac
      sleep 0.2; done ) &
  local sampler=$!
  local t0 t1 cpu0 cpu1
  cpu0=$(server_cpu_ticks "$shape" "$hermod_pid")
  local busy0
  busy0=$(machine_ticks)
  t0=$(date +%s.%N)
  case $shape in
    inject-100) wait_port "$inject_port"; "${timed[@]}" -o "$work/client.time" "$BIN/smtp-blaster" inject -q -c "${INJECT_C:-4}" -m "$N" -r 100 --size "$SIZE" "http://127.0.0.1:$inject_port/api/inject/v1" ;;
    source-1|postfix-1|old-1|nometrics-1|noadmin-1|one-1|ceiling-1|events-1|traced-1) "${timed[@]}" -o "$work/client.time" /usr/sbin/smtp-source -s "$C" -m "$N" -l "$SIZE" "127.0.0.1:$hermod_port" ;;
    source-d|postfix-d) "${timed[@]}" -o "$work/client.time" /usr/sbin/smtp-source -d -s "$C" -m "$N" -l "$SIZE" "127.0.0.1:$hermod_port" ;;
    blaster-1|postfix-b1|one-b1|old-b1) "${timed[@]}" -o "$work/client.time" "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --size "$SIZE" --pipelining "127.0.0.1:$hermod_port" ;;
    blaster-100) "${timed[@]}" -o "$work/client.time" "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 100 --size "$SIZE" --pipelining "127.0.0.1:$hermod_port" ;;
  esac
  local t_sent
  t_sent=$(date +%s.%N)
  local busy_sent
  busy_sent=$(machine_ticks)
  t1=$(sink_last_message "$sink_pid" "$work/sink.json")
  cpu1=$(server_cpu_ticks "$shape" "$hermod_pid")
  case $shape in
    postfix-*) kill $sampler 2>/dev/null || true; postfix stop >/dev/null 2>&1 || true
      # Its smtpd on this run's port leaves master.cf again (a stale port would be
      # copied by whatever starts from the machine's master.cf next).
      postconf -X -M "$POSTFIX_SERVICE" 2>/dev/null || true; POSTFIX_SERVICE= ;;
    ceiling-*) kill $sampler 2>/dev/null || true ;;
    *) kill -TERM $hermod_pid; wait $hermod_pid || true; kill $sampler 2>/dev/null || true ;;
  esac
  case $shape in
    traced-*) kill -TERM "$otlp_pid" 2>/dev/null || true; wait "$otlp_pid" 2>/dev/null || true
      echo "$(cat "$work/otlp.log") (2 a message: $((2 * N)) in all)" ;;
    events-*) echo "events in the file when hermod stopped: $(wc -l < "$work/events.jsonl" 2>/dev/null || echo 0) (Reception and Delivery: $((2 * N)) in all)" ;;
  esac
  local peak_kb accepted spool_kb
  peak_kb=$(sort -n "$work/rss" | tail -1)
  case $shape in
    postfix-*) accepted=$(grep -c "status=sent" /var/log/postfix-bench.log 2>/dev/null || true); spool_kb=$(du -sk /var/spool/postfix | cut -f1) ;;
    ceiling-*) accepted=$(python3 -c "import json; print(json.load(open('$work/sink.json'))['received'])" 2>/dev/null || echo "?"); spool_kb=0 ;;
    *) accepted=$(grep -c "message accepted" "$work/hermod.log" || true); spool_kb=$(du -sk "$work/spool" | cut -f1) ;;
  esac
  python3 - "$shape" "$N" "$t0" "$t_sent" "$t1" "${peak_kb:-0}" "$accepted" "$spool_kb" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$busy0" "$busy_sent" "$(cat "$work/client.time" 2>/dev/null)" "$(cat "$work/sink.time" 2>/dev/null)" <<'PY'
import sys
shape, n, t0, ts, t1, kb, acc, spool, ticks, hz = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10])
(b0, i0), (b1, i1) = (map(int, a.split()) for a in sys.argv[11:13])
busy = 100 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0))
# user + system seconds of the load generator and of the sink, per message in µs
side = lambda t: sum(map(float, t.split()[-2:])) * 1e6 / n if t.strip() else float("nan")
client_us, sink_us = side(sys.argv[13]), side(sys.argv[14])
cpu = ticks / hz
print(f"{shape:12s} messages={n} accepted={acc} submit={n/(ts-t0):7.0f}/s end-to-end={n/(t1-t0):7.0f}/s elapsed={t1-t0:6.2f}s "
      f"server_cpu={cpu:5.1f}s ({cpu*1e6/n:4.0f}us/msg) server_peak_mem={kb/1024:6.1f}MB spool_after={spool/1024:6.1f}MB machine_busy_sending={busy:3.0f}% "
      f"client_cpu={client_us:4.0f}us/msg sink_cpu={sink_us:4.0f}us/msg")
PY
}

# The whole machine's busy and idle clock ticks (idle includes iowait), from /proc/stat:
# how much of the two cores the load generator, the server and the sink left unused.
machine_ticks() {
  awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat
}

# CPU time (user+system, in clock ticks) of the server under test: hermod's process, or
# every process of Postfix (master and the postfix user's).
server_cpu_ticks() {
  local pids
  case $1 in
    postfix-*) pids="$(pgrep -u postfix | xargs) $2" ;;
    *) pids=$2 ;;
  esac
  local total=0 p
  for p in $pids; do
    [ -r /proc/$p/stat ] || continue
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' /proc/$p/stat)))
  done
  echo $total
}

# Postfix as a loopback relay to the sink: durable queue (its default), relayhost = sink,
# smtpd on 127.0.0.1:$1, relaying allowed from 127.0.0.0/8, logging to a file.
start_postfix() {
  local port=$1 sink=$2
  postfix stop >/dev/null 2>&1 || true
  [ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
  postconf -e "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
    "relayhost = [127.0.0.1]:$sink" "mydestination =" "myhostname = bench.localdomain" \
    "smtpd_recipient_restrictions = permit_mynetworks, reject" "maillog_file = /var/log/postfix-bench.log" \
    "smtpd_client_connection_count_limit = 0" "default_process_limit = 200" "compatibility_level = 3.6"
  postconf -X -M "smtp/inet" 2>/dev/null || true
  postconf -M "127.0.0.1:$port/inet=127.0.0.1:$port inet n - n - - smtpd"
  POSTFIX_SERVICE="127.0.0.1:$port/inet"
  postconf -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
  : > /var/log/postfix-bench.log
  postfix check >/dev/null 2>&1 || true
  postfix start >/dev/null 2>&1 || { echo "postfix did not start; see /var/log/postfix-bench.log" >&2; return 1; }
}

run_rounds
