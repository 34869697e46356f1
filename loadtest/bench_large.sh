#!/usr/bin/env bash
# Large messages through hermod on loopback: C concurrent messages of SIZE each
# (default 30 × 24 MB) from smtp-blaster send, relayed to the smtp-blaster sink.
#
# Prints hermod's peak RSS (VmHWM) while they pass, its RSS once the sink has them all,
# and the spool's size on disk before, at the peak and after delivery. The issue's
# targets: peak under 400 MB, memory given back, spool back to its baseline.
# Usage: loadtest/bench_large.sh                 C=30 SIZE=24m ROUNDS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-30}
SIZE=${SIZE:-24m}
ROUNDS=${ROUNDS:-2}
source loadtest/lib.sh
kib() { awk -v k="$1" '/^'"$1"':/{print $2}' /proc/$2/status; }

sink_port=$(free_port); hermod_port=$(free_port)
"$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --max-size 100m -q &
SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
  SMTP_MAX_MESSAGE_SIZE=30000000 "$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
hermod_pid=$!
wait_port "$sink_port"; wait_port "$hermod_port"
echo "baseline: rss=$(kib VmRSS $hermod_pid) KiB spool=$(du -sk "$work/spool" | cut -f1) KiB"
for round in $(seq 1 "$ROUNDS"); do
  peak_spool=0
  ( while kill -0 $hermod_pid 2>/dev/null; do du -sk "$work/spool" 2>/dev/null | cut -f1; sleep 0.2; done ) > "$work/spool.sizes" &
  watcher=$!
  "$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -c "$C" -m "$C" -k 1 -s "$SIZE" --chunking --pipelining -q --json "$work/send.json"
  # Wait until every message has left the queue.
  for _ in $(seq 1 600); do
    sent=$(grep -c 'status="sent"' "$work/hermod.log" || true)
    [ "$sent" -ge $((C * round)) ] && break
    sleep 0.2
  done
  sleep 1
  kill $watcher 2>/dev/null || true
  peak_spool=$(sort -n "$work/spool.sizes" | tail -1)
  accepted=$(python3 -c "import json; print(json.load(open('$work/send.json'))['accepted'])")
  echo "round $round: accepted=$accepted delivered=$sent peak_rss=$(kib VmHWM $hermod_pid) KiB rss_after=$(kib VmRSS $hermod_pid) KiB spool_peak=${peak_spool} KiB spool_after=$(du -sk "$work/spool" | cut -f1) KiB"
done
