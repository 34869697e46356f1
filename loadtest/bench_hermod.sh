#!/usr/bin/env bash
# End-to-end relay benchmark on loopback: load generator → hermod → sink.
#
# Prints messages per second end to end (from the first message sent until the sink has
# received the last one) and hermod's peak RSS, for each load shape:
#   - smtp-source -s 50 -m 20000 -l 1024       (one message per connection)
#   - smtp-source -s 50 -m 20000 -l 1024 -d    (many messages per connection)
#   - smtp-blaster send -c 50 -m 20000 -k 1    (one per connection, PIPELINING)
#   - smtp-blaster send -c 50 -m 20000 -k 100  (100 per connection, PIPELINING)
# and, when Postfix is installed (bench_postfix_relay.sh), Postfix relaying the same way.
#
# hermod runs with its embedded defaults (sled spool, fsync before every 250, info logs
# to a file) and relays everything to the sink through SMTP_RELAYHOST.
# Usage: loadtest/bench_hermod.sh            N=20000 C=50 SIZE=1024 by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"source-1 source-d blaster-1 blaster-100"}
BIN=target/release

cargo build --release -q -p hermod -p smtp-blaster
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

run_shape() {
  local shape=$1
  local sink_port hermod_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$N" --json "$work/sink.json" -q &
  local sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 \
    "$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
  local hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  : > "$work/rss"
  ( while kill -0 $hermod_pid 2>/dev/null; do ps -o rss= -p $hermod_pid >> "$work/rss" 2>/dev/null || true; sleep 0.2; done ) &
  local sampler=$!
  local t0 t1
  t0=$(date +%s.%N)
  case $shape in
    source-1) /usr/sbin/smtp-source -s "$C" -m "$N" -l "$SIZE" "127.0.0.1:$hermod_port" ;;
    source-d) /usr/sbin/smtp-source -d -s "$C" -m "$N" -l "$SIZE" "127.0.0.1:$hermod_port" ;;
    blaster-1) "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --size "$SIZE" --pipelining "127.0.0.1:$hermod_port" ;;
    blaster-100) "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 100 --size "$SIZE" --pipelining "127.0.0.1:$hermod_port" ;;
  esac
  local t_sent
  t_sent=$(date +%s.%N)
  if ! timeout 300 tail --pid=$sink_pid -f /dev/null; then echo "sink did not receive $N messages" >&2; fi
  t1=$(date +%s.%N)
  kill -TERM $hermod_pid; wait $hermod_pid || true
  kill $sampler 2>/dev/null || true
  local peak_kb accepted spool_kb
  peak_kb=$(sort -n "$work/rss" | tail -1)
  spool_kb=$(du -sk "$work/spool" | cut -f1)
  accepted=$(grep -c "message accepted" "$work/hermod.log" || true)
  python3 - "$shape" "$N" "$t0" "$t_sent" "$t1" "${peak_kb:-0}" "$accepted" "$spool_kb" <<'PY'
import sys
shape, n, t0, ts, t1, kb, acc, spool = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
print(f"{shape:12s} messages={n} accepted={acc} submit={n/(ts-t0):8.0f}/s end-to-end={n/(t1-t0):8.0f}/s elapsed={t1-t0:6.2f}s hermod_peak_rss={kb/1024:6.1f}MB spool_after={spool/1024:6.1f}MB")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
for shape in $SHAPES; do run_shape "$shape"; done
