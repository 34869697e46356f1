#!/usr/bin/env bash
# TLS on both legs, hermod and Postfix side by side: smtp-blaster → (STARTTLS) → relay →
# (STARTTLS) → sink, 1 KiB messages, 50 connections, one message per connection.
#
# Shapes:
#   - hermod-tls:  hermod with a certificate (STARTTLS offered), opportunistic TLS to the
#                  sink (its default).
#   - hermod-plain: the same without TLS on either leg, so that (cpu_tls - cpu_plain) / N
#                  is the CPU one TLS connection costs (handshakes on both legs, the
#                  encryption of one 1 KiB message).
#   - postfix-tls: the machine's Postfix set up the same way: smtpd_tls_security_level =
#                  may with the same certificate, smtp_tls_security_level = may, both TLS
#                  session caches on. This rewrites /etc/postfix/main.cf and master.cf:
#                  run it only on a scratch machine (CI does not run benchmarks).
#                  Postfix then makes one outbound TLS handshake per message, where
#                  hermod reuses its connections to the sink (smtp_tls_connection_reuse
#                  through tlsproxy failed its handshakes here: "Cannot start TLS").
#   - idle:        hermod's RSS per idle connection: IDLE connections opened and left
#                  open in clear, then IDLE more that finished STARTTLS, RSS sampled
#                  after each batch.
#
# Usage: loadtest/bench_tls.sh                 N=10000 C=50 SIZE=1024 IDLE=1000
#        SHAPES="postfix-tls hermod-tls" REPEAT=3 loadtest/bench_tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
C=${C:-50}
SIZE=${SIZE:-1024}
IDLE=${IDLE:-1000}
SHAPES=${SHAPES:-"postfix-tls hermod-tls hermod-plain idle"}
source loadtest/lib.sh

# One certificate for both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj "/CN=bench.localdomain" \
  -addext "subjectAltName=DNS:bench.localdomain,DNS:localhost" 2>/dev/null
chmod 644 "$work/cert.pem" "$work/key.pem"

start_postfix_tls() {
  local port=$1 sink=$2 reuse=$3
  postfix stop >/dev/null 2>&1 || true
  [ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
  postconf -e "smtp_tls_connection_reuse = $reuse"
  cp "$work/cert.pem" /etc/postfix/bench-cert.pem; cp "$work/key.pem" /etc/postfix/bench-key.pem
  postconf -e "inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
    "relayhost = [127.0.0.1]:$sink" "mydestination =" "myhostname = bench.localdomain" \
    "smtpd_recipient_restrictions = permit_mynetworks, reject" "maillog_file = /var/log/postfix-bench.log" \
    "smtpd_client_connection_count_limit = 0" "default_process_limit = 200" "compatibility_level = 3.6" \
    "smtpd_tls_security_level = may" "smtpd_tls_cert_file = /etc/postfix/bench-cert.pem" \
    "smtpd_tls_key_file = /etc/postfix/bench-key.pem" "smtp_tls_security_level = may" \
    'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache' \
    'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache'
  postconf -X -M "smtp/inet" 2>/dev/null || true
  postconf -M "127.0.0.1:$port/inet=127.0.0.1:$port inet n - n - - smtpd"
  POSTFIX_SERVICE="127.0.0.1:$port/inet"
  postconf -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
  postconf -M "tlsmgr/unix=tlsmgr unix - - n 1000? 1 tlsmgr"
  : > /var/log/postfix-bench.log
  postfix check >/dev/null 2>&1 || true
  postfix start >/dev/null 2>&1 || { echo "postfix did not start; see /var/log/postfix-bench.log" >&2; return 1; }
}

# CPU ticks of the server under test (hermod, or every Postfix process).
server_cpu_ticks() {
  local pids total=0 p
  case $1 in
    postfix-*) pids="$(pgrep -u postfix | xargs) $2" ;;
    *) pids=$2 ;;
  esac
  for p in $pids; do
    [ -r /proc/$p/stat ] || continue
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' /proc/$p/stat)))
  done
  echo $total
}

# SIGTERM, then wait until the process is gone (it is not this shell's child).
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}

start_hermod() {
  local port=$1 sink=$2 tls=$3
  local tls_env=()
  if [ "$tls" = yes ]; then
    tls_env=(TLS_CERT_PATH="$work/cert.pem" TLS_KEY_PATH="$work/key.pem")
  else
    tls_env=(HERMOD_DELIVERY_TLS=none)
  fi
  env "${tls_env[@]}" SMTP_HOST=127.0.0.1 SMTP_PORT="$port" SMTP_DB_PATH="$work/spool" \
    SMTP_RELAYHOST="[127.0.0.1]:$sink" SMTP_HOSTNAME=bench.localdomain \
    SMTP_MAX_CONNECTIONS=5000 SMTP_MAX_CONNECTIONS_PER_IP=5000 HERMOD_ADMIN_LISTEN= \
    "$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
  echo $!
}

run_shape() {
  local shape=$1 sink_port relay_port server_pid
  sink_port=$(free_port); relay_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  local sink_tls=()
  [ "$shape" = hermod-plain ] && sink_tls=(--no-starttls)
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" "${sink_tls[@]}" --expect "$N" --json "$work/sink.json" -q &
  local sink_pid=$!
  case $shape in
    postfix-tls) start_postfix_tls "$relay_port" "$sink_port" no; server_pid=$(xargs < /var/spool/postfix/pid/master.pid) ;;
    hermod-tls) server_pid=$(start_hermod "$relay_port" "$sink_port" yes) ;;
    hermod-plain) server_pid=$(start_hermod "$relay_port" "$sink_port" no) ;;
  esac
  wait_port "$sink_port"; wait_port "$relay_port"
  local tls_args=()
  [ "$shape" = hermod-plain ] || tls_args=(--starttls --insecure)
  local t0 t1 cpu0 cpu1
  cpu0=$(server_cpu_ticks "$shape" "$server_pid")
  t0=$(date +%s.%N)
  "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --size "$SIZE" --pipelining "${tls_args[@]}" \
    --json "$work/send.json" "127.0.0.1:$relay_port"
  t1=$(sink_last_message "$sink_pid" "$work/sink.json")
  cpu1=$(server_cpu_ticks "$shape" "$server_pid")
  case $shape in
    postfix-*) postfix stop >/dev/null 2>&1 || true
      postconf -X -M "$POSTFIX_SERVICE" 2>/dev/null || true; POSTFIX_SERVICE= ;;
    *) stop_pid "$server_pid" ;;
  esac
  python3 - "$shape" "$N" "$t0" "$t1" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$work/sink.json" "$work/send.json" <<'PY'
import json, sys
shape, n, t0, t1, ticks, hz, sink, send = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
stats = json.load(open(sink))
sent = json.load(open(send))
cpu = ticks / hz
print(f"{shape:13s} messages={n} end-to-end={n/(t1-t0):7.0f}/s elapsed={t1-t0:6.2f}s server_cpu={cpu:5.1f}s "
      f"({cpu*1e6/n:5.0f}us/connection) sink_tls_handshakes={stats.get('tls_handshakes')} "
      f"client_errors={sent.get('errors', sent.get('failed', '?'))}")
PY
}

# RSS per idle connection: plain ones first, then ones that finished STARTTLS.
run_idle() {
  local port pid
  port=$(free_port)
  rm -rf "$work/spool"
  pid=$(start_hermod "$port" 9 yes)
  wait_port "$port"
  sleep 1
  python3 - "$port" "$pid" "$IDLE" <<'PY'
import socket, ssl, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def reply(s):
    data = b""
    while True:
        data += s.recv(4096)
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) > 3 and lines[-2][3:4] == b" ":
            return data
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
held = []
base = rss()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); reply(s)
    s.sendall(b"EHLO idle.test\r\n"); reply(s)
    held.append(s)
time.sleep(1)
plain = rss()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); reply(s)
    s.sendall(b"EHLO idle.test\r\n"); reply(s)
    s.sendall(b"STARTTLS\r\n"); reply(s)
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(b"EHLO idle.test\r\n"); reply(t)
    held.append(t)
time.sleep(1)
tls = rss()
print(f"idle          connections={n} rss_base={base/1024:.1f}MB per_plain_connection={(plain-base)/n:.1f}KiB "
      f"per_tls_connection={(tls-plain)/n:.1f}KiB")
PY
  stop_pid "$pid"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
REPEAT=${REPEAT:-1}
for round in $(seq 1 "$REPEAT"); do
  [ "$REPEAT" -gt 1 ] && echo "round $round"
  for shape in $SHAPES; do
    settle
    case $shape in idle) run_idle ;; *) run_shape "$shape" ;; esac
  done
done
