#!/usr/bin/env bash
# Recovery of a large spool: N messages are queued while the next hop is down, hermod is
# killed (kill -9), and started again with the next hop up. Prints how long the start
# took (until "listening"), hermod's RSS then, its peak RSS while it delivers the
# backlog, and how long the backlog took. Issue 7's goal: one million queued messages
# recovered within 10 s in under 200 MB.
# Usage: loadtest/bench_recovery.sh             N=1000000 C=50 by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
C=${C:-50}
source loadtest/lib.sh

hermod_port=$(free_port); sink_port=$(free_port)
run_hermod() {
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 RETRY_INTERVAL=1 \
    "$BIN/hermod" serve --config config/hermod.toml > "$work/hermod.$1.log" 2>&1 &
  hermod_pid=$!
}
rss_kib() { awk '/^VmRSS:/{print $2}' /proc/$1/status; }

# Fill: the relay host is down, so everything stays queued.
run_hermod fill
wait_port "$hermod_port"
start=$(date +%s.%N)
"$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -c "$C" -m "$N" -k 100 --pipelining -q --json "$work/fill.json"
python3 -c "import json; r=json.load(open('$work/fill.json')); print('filled: accepted=%d in %.0f s (%.0f msg/s)' % (r['accepted'], r['elapsed_s'], r['rate_per_s']))"
echo "filled: rss=$(rss_kib $hermod_pid) KiB spool=$(du -sm "$work/spool" | cut -f1) MiB"
kill -9 $hermod_pid; wait $hermod_pid 2>/dev/null || true

# Recover with the relay host up.
"$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls -q &
wait_port "$sink_port"
start=$(date +%s.%N)
run_hermod recover
until grep -q listening "$work/hermod.recover.log"; do sleep 0.01; done
listening=$(date +%s.%N)
echo "recovery: $(grep -o 'recovered messages from the spool messages=[0-9]*' "$work/hermod.recover.log" | grep -o '[0-9]*$') messages, listening after $(python3 -c "print('%.2f' % ($listening - $start))") s, rss=$(rss_kib $hermod_pid) KiB"
peak=0
while true; do
  if ! kill -0 $hermod_pid 2>/dev/null; then
    echo "hermod exited while delivering the backlog:"; tail -20 "$work/hermod.recover.log"; exit 1
  fi
  rss=$(rss_kib $hermod_pid); [ "$rss" -gt "$peak" ] && peak=$rss
  sent=$(grep -c 'status="sent"' "$work/hermod.recover.log" || true)
  [ "$sent" -ge "$N" ] && break
  sleep 1
done
done_at=$(date +%s.%N)
echo "backlog: delivered=$sent in $(python3 -c "print('%.0f' % ($done_at - $listening))") s, peak rss=$peak KiB (sampled each second), hwm=$(awk '/^VmHWM:/{print $2}' /proc/$hermod_pid/status) KiB"
