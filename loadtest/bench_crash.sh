#!/usr/bin/env bash
# kill -9 under load: is every acknowledged message delivered, and how many twice?
#
# ROUNDS times: start hermod on the same spool, load it with smtp-blaster send
# (C connections, SIZE messages, PIPELINING), and kill -9 it after KILL_AFTER seconds.
# Then start it once more and let it deliver everything. The sink logs the Message-ID of
# every message it receives; the load generator logs every one hermod acknowledged.
# Prints: acknowledged, delivered, lost (acknowledged but never delivered: must be 0)
# and duplicates (delivered more than once), as counts and shares.
# Usage: loadtest/bench_crash.sh          ROUNDS=10 C=20 SIZE=300k KILL_AFTER=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-10}
C=${C:-20}
SIZE=${SIZE:-300k}
KILL_AFTER=${KILL_AFTER:-3}
source loadtest/lib.sh

sink_port=$(free_port); hermod_port=$(free_port)
"$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --max-size 100m \
  --received-log "$work/received.log" -q &
sink_pid=$!
wait_port "$sink_port"

start_hermod() {
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_MESSAGE_SIZE=30000000 RETRY_INTERVAL=1 \
    "$BIN/hermod" serve --config config/hermod.toml >> "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$hermod_port"
}

for round in $(seq 1 "$ROUNDS"); do
  start_hermod
  "$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -c "$C" -d 600s -k 0 -s "$SIZE" --pipelining \
    -q --accepted-log "$work/accepted.$round.log" --timeout 5s > /dev/null 2>&1 &
  sender=$!
  sleep "$KILL_AFTER"
  kill -9 $hermod_pid; wait $hermod_pid 2>/dev/null || true
  kill -INT $sender 2>/dev/null || true; sleep 0.5; kill -INT $sender 2>/dev/null || true
  wait $sender 2>/dev/null || true
  echo "round $round: acknowledged so far $(cat "$work"/accepted.*.log | wc -l)"
done

# The last start delivers what is left; wait until it has logged no delivery attempt
# for 10 s, then stop hermod and the sink (which writes out its log as it exits).
start_hermod
last=-1
while true; do
  now=$(grep -c 'delivery attempt' "$work/hermod.log" || true)
  [ "$now" = "$last" ] && break
  last=$now; sleep 10
done
kill $hermod_pid; wait $hermod_pid 2>/dev/null || true
kill -TERM $sink_pid; wait $sink_pid 2>/dev/null || true
# Crash leftovers that look like lost mail (an envelope whose body went first).
echo "log: $(grep -c 'message data missing from spool' "$work/hermod.log" || true) 'message data missing' lines"

python3 - "$work" <<'PY'
import collections, glob, sys
work = sys.argv[1]
acked = set()
for path in glob.glob(f"{work}/accepted.*.log"):
    acked.update(line.strip() for line in open(path) if line.strip())
received = [line.strip() for line in open(f"{work}/received.log") if line.strip()]
counts = collections.Counter(received)
lost = [m for m in acked if m not in counts]
dupes = sum(n - 1 for n in counts.values())
print(f"acknowledged={len(acked)} delivered={len(counts)} lost={len(lost)} "
      f"duplicates={dupes} ({100.0 * dupes / max(1, len(counts)):.2f} %)")
PY
