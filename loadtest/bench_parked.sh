#!/usr/bin/env bash
# Mail parked for a down next hop, and a backlog drained: memory and the operator's
# actions (issue 20, items 2 and 3).
#
# 1. park:  hermod on its embedded defaults with relayhost = a loopback port where
#           nothing listens; `smtp-blaster send -m PARK -c 50 -k 100` fills its queue.
#           Prints the intake rate and hermod's peak RSS (VmHWM) while PARK messages wait.
# 2. drain: hermod is stopped, a sink is started on the hop's port and hermod is started
#           again on the same spool: the whole backlog is recovered and delivered. Prints
#           how long until the sink has every message, and hermod's peak RSS.
# 3. delete: a fresh queue of DELETE messages parked for the down hop, then
#           `hermod queue delete --domain` of all of them, timed; none may be busy.
# Goals: park and drain under 200 MB RSS with PARK = 1,000,000; delete of 20,000 in
# under 10 s.
# Usage: loadtest/bench_parked.sh          PARK=1000000 DELETE=20000 CACHE=8388608
# (CACHE: queue.spool_cache_size in octets)
set -euo pipefail
cd "$(dirname "$0")/.."
PARK=${PARK:-1000000}
DELETE=${DELETE:-20000}
CACHE=${CACHE:-8388608}
source loadtest/lib.sh
hwm() { awk '/^VmHWM:/{print $2}' /proc/$1/status; }

start_hermod() {
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$hop_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    HERMOD_DELIVERY_DEAD_HOST_FAILURES=1 HERMOD_QUEUE_SPOOL_CACHE_SIZE="$CACHE" \
    "$BIN/hermod" serve --config config/hermod.toml >> "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$hermod_port"
}

stop_hermod() { kill "$hermod_pid"; wait "$hermod_pid" 2>/dev/null || true; }

parked() { curl -s "127.0.0.1:$admin_port/stats" | python3 -c 'import json,sys; q=json.load(sys.stdin)["queue"]; print(q["parked"], q["messages"], q["in_memory"])'; }

hermod_port=$(free_port); hop_port=$(free_port); admin_port=$(free_port)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"

# 1. park
start_hermod
"$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -m "$PARK" -c 50 -k 100 --pipelining -q --json "$work/send.json"
python3 -c "import json; r=json.load(open('$work/send.json')); print('park: accepted=%d rate=%.0f msg/s' % (r['accepted'], r['rate_per_s']))"
sleep 5
echo "park: parked/messages/in_memory=$(parked) peak_rss=$(hwm "$hermod_pid") KiB"
stop_hermod

# 2. drain
"$BIN/smtp-blaster" sink --listen "127.0.0.1:$hop_port" --no-starttls -q --expect "$PARK" --json "$work/sink.json" &
sink_pid=$!
wait_port "$hop_port"
started=$(date +%s.%N)
start_hermod
last=$(sink_last_message "$sink_pid" "$work/sink.json")
echo "drain: $PARK messages delivered in $(python3 -c "print('%.1f' % ($last - $started))") s peak_rss=$(hwm "$hermod_pid") KiB"
stop_hermod

# 3. delete
rm -rf "$work/spool"
hop_port=$(free_port)
start_hermod
"$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -m "$DELETE" -c 50 -k 100 --pipelining -q
sleep 3
echo "delete: parked/messages/in_memory before=$(parked)"
t0=$(date +%s.%N)
SMTP_DB_PATH="$work/spool" HERMOD_ADMIN_LISTEN="127.0.0.1:$admin_port" "$BIN/hermod" queue delete --config config/hermod.toml > "$work/delete.json"
t1=$(date +%s.%N)
python3 -c "import json; r=json.load(open('$work/delete.json')); print('delete: done=%d busy=%d in %.2f s' % (len(r['done']), len(r['busy']), $t1 - $t0))"
echo "delete: parked/messages/in_memory after=$(parked)"
stop_hermod
