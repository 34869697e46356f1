#!/usr/bin/env bash
# The MX gateway's policies, side by side in one run: smtp-source → hermod → sink, 1 KiB
# messages, 50 connections, one message per connection (the spine benchmark's shape),
# the client outside relay.networks and mail for a relay domain, so every policy runs:
#   - nopolicies-1: no policy actor.
#   - policies-1:   rate limits on and never reached, greylisting on with the client
#                   already whitelisted (one pass in a warm-up), a DNSBL zone served by
#                   rbldnsd on loopback that does not list the client (answers cached).
#   - redis-1:      the same with [redis]: rate limits and greylist in a redis-server.
# Prints messages per second end to end, hermod's CPU per message and peak RSS.
#
# Usage: loadtest/bench_policies.sh          N=20000 C=50 SIZE=1024 REPEAT=1 by default
#        SHAPES="nopolicies-1 policies-1" REPEAT=3 loadtest/bench_policies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"nopolicies-1 policies-1 redis-1"}
source loadtest/lib.sh

# A DNS blocklist that lists someone else.
chmod 755 "$work"
printf ':127.0.0.2:Listed\n192.0.2.66\n' > "$work/bl.zone"; chmod 644 "$work/bl.zone"
rbl_port=$(free_port)
rbldnsd -n -u nobody -b "127.0.0.1/$rbl_port" -w "$work" bl.test:ip4set:bl.zone >/dev/null 2>&1 &
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$work" >/dev/null 2>&1 &
wait_port "$redis_port"

# The configuration of a shape: the client outside relay.networks, mail for relay.test.
shape_config() {
  local file="$work/$1.toml"
  printf '[relay]\ndomains = ["relay.test"]\nnetworks = []\n' > "$file"
  case $1 in
    nopolicies-*) ;;
    *)
      cat >> "$file" <<EOF
[rate_limit]
messages_per_ip = 100000000
connections_per_ip = 100000000
[greylist]
enabled = true
delay = "1s"
whitelist_after = 1
[dnsbl]
enabled = true
zones = [{ zone = "bl.test" }]
dns_servers = ["127.0.0.1:$rbl_port"]
EOF
      case $1 in redis-*) printf '[redis]\nurl = "redis://127.0.0.1:%s"\nprefix = "bench%s:"\n' "$redis_port" "$RANDOM" >> "$file" ;; esac ;;
  esac
  echo "$file"
}

# One recipient at RCPT twice, a second apart: the greylist whitelists the client.
warm_up() {
  python3 - "$1" <<'PY'
import smtplib, sys, time
for attempt in range(3):
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
    try:
        s.sendmail("warm@bench.test", ["warm@relay.test"], "Subject: warm\r\n\r\nup\r\n")
        s.quit()
        break
    except smtplib.SMTPRecipientsRefused:
        s.quit()
        time.sleep(1.2)
PY
}

run_shape() {
  local shape=$1 sink_port hermod_port hermod_pid
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  local expect=$N
  [ "$shape" = nopolicies-1 ] || expect=$((N + 1))
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$expect" --json "$work/sink.json" -q &
  local sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT="$hermod_port" SMTP_DB_PATH="$work/spool" \
    SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN= \
    "$BIN/hermod" serve --config "$(shape_config "$shape")" > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  [ "$shape" = nopolicies-1 ] || warm_up "$hermod_port"
  : > "$work/rss"
  ( while kill -0 $hermod_pid 2>/dev/null; do ps -o rss= -p $hermod_pid >> "$work/rss" 2>/dev/null || true; sleep 0.2; done ) &
  local sampler=$!
  local t0 t1 cpu0 cpu1
  cpu0=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -s "$C" -m "$N" -l "$SIZE" -f sender@bench.test -t user@relay.test "127.0.0.1:$hermod_port"
  t1=$(sink_last_message "$sink_pid" "$work/sink.json")
  cpu1=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  kill -TERM $hermod_pid; wait $hermod_pid || true; kill $sampler 2>/dev/null || true
  local refused
  refused=$(grep -c "rejected\|greylisted\|Rate limit\|blocked" "$work/hermod.log" || true)
  python3 - "$shape" "$N" "$t0" "$t1" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$(sort -n "$work/rss" | tail -1)" "$refused" <<'PY'
import sys
shape, n, t0, t1, ticks, hz, kb, refused = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7] or 0), int(sys.argv[8])
cpu = ticks / hz
print(f"{shape:13s} messages={n} end-to-end={n/(t1-t0):7.0f}/s elapsed={t1-t0:6.2f}s cpu={cpu:5.1f}s ({cpu*1e6/n:4.0f}us/msg) "
      f"peak_rss={kb/1024:6.1f}MB refusal_log_lines={refused}")
PY
}

run_rounds
