#!/usr/bin/env bash
# The admin API with a large queue: N messages for D destinations wait for a next hop
# that is down; then the time of a /metrics scrape (cold: the queue is counted by
# destination from the spool; warm: the count is reused for 5 s), of /stats, and of
# `hermod queue list` (its first page), with the CLI's peak RSS and hermod's RSS.
# Usage: loadtest/bench_admin.sh              N=20000 D=10000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
D=${D:-10000}
source loadtest/lib.sh

hermod_port=$(free_port); admin_port=$(free_port); dead_port=$(free_port)
export SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" \
  SMTP_RELAYHOST="[127.0.0.1]:$dead_port" HERMOD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  HERMOD_QUEUE_RETRY_INTERVAL=1h HERMOD_QUEUE_MAX_RETRY_INTERVAL=1h \
  SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000
"$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
pid=$!
wait_port "$hermod_port"; wait_port "$admin_port"
"$BIN/smtp-blaster" send -q -c 50 -m "$N" -k 100 --pipelining --domains "$D" "127.0.0.1:$hermod_port"
sleep 5   # the first attempts fail and the hop is marked down
echo "queue: $(curl -s "http://127.0.0.1:$admin_port/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["queue_size"], "messages,", len(s["destinations"]), "destination rows")')"
sleep 6   # the count made by /stats is stale again
curl -s -o "$work/scrape" -w "metrics scrape, cold: %{time_total} s\n" "http://127.0.0.1:$admin_port/metrics"
for _ in 1 2 3; do
  curl -s -o "$work/scrape" -w "metrics scrape, warm: %{time_total} s\n" "http://127.0.0.1:$admin_port/metrics"
done
echo "per-destination series in the scrape: $(grep -c '^queue_destination_recipients' "$work/scrape")"
curl -s -o /dev/null -w "stats (warm): %{time_total} s\n" "http://127.0.0.1:$admin_port/stats"
t0=$(date +%s.%N)
"$BIN/hermod" queue list --config config/hermod.toml | head -1 > /dev/null
t1=$(date +%s.%N)
echo "hermod queue list, first line: $(python3 -c "print(round($t1 - $t0, 3))") s"
/usr/bin/time -f "hermod queue list: %e s, peak RSS %M KB" "$BIN/hermod" queue list --config config/hermod.toml > /dev/null
echo "hermod RSS: $(ps -o rss= -p $pid) KB"
kill -TERM $pid; wait $pid || true
