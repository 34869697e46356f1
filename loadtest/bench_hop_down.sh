#!/usr/bin/env bash
# Intake while the next hop is down, side by side with intake while it is up, and what
# a long outage costs afterwards.
#
# For each round, two runs of `smtp-blaster send -c C -d DURATION -k 100` against hermod
# on its embedded defaults with RETRY_INTERVAL=1s:
#   - up:   relayhost = a running smtp-blaster sink
#   - down: relayhost = a loopback port where nothing listens
# and prints the accepted rate of each. After the last "down" run, hermod is left alone
# with its queue for OUTAGE seconds while its RSS and log size are sampled: with the
# hop's mail held in one waiting list they must stay flat (issue 7: RSS grew from 164 MB
# to 1.26 GB and the log by 643 MB in two minutes).
# Usage: loadtest/bench_hop_down.sh            C=50 DURATION=20s ROUNDS=2 OUTAGE=120
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-50}
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-2}
OUTAGE=${OUTAGE:-120}
source loadtest/lib.sh
rss() { awk '/^VmRSS:/{print $2}' /proc/$1/status; }

run() {
  local shape=$1 keep=${2:-}
  local hermod_port sink_port hop
  hermod_port=$(free_port); sink_port=$(free_port)
  rm -rf "$work/spool"
  if [ "$shape" = up ]; then
    "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls -q &
    sink_pid=$!
    wait_port "$sink_port"
  fi
  hop="[127.0.0.1]:$sink_port"
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="$hop" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 RETRY_INTERVAL=1 \
    "$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$hermod_port"
  "$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -c "$C" -d "$DURATION" -k 100 --pipelining -q --json "$work/send.json"
  python3 -c "import json; r=json.load(open('$work/send.json')); print('$shape: accepted=%d rate=%.0f msg/s p99=%.1f ms' % (r['accepted'], r['rate_per_s'], r['latency_ms']['p99']))"
  if [ -n "$keep" ]; then
    echo "outage: queued=$(python3 -c "import json; print(json.load(open('$work/send.json'))['accepted'])") messages; sampling RSS and log size for ${OUTAGE}s"
    for t in $(seq 0 10 "$OUTAGE"); do
      echo "  t=${t}s rss=$(rss $hermod_pid) KiB log=$(stat -c %s "$work/hermod.log") B"
      [ "$t" -lt "$OUTAGE" ] && sleep 10
    done
  fi
  kill $hermod_pid; wait $hermod_pid 2>/dev/null || true
  if [ "$shape" = up ]; then kill $sink_pid; wait $sink_pid 2>/dev/null || true; fi
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  run up
  if [ "$round" -eq "$ROUNDS" ]; then run down keep; else run down; fi
done
