#!/usr/bin/env bash
# Where hermod's CPU goes, thread by thread, for two or more hermod binaries side by side.
#
# For each binary, round by round: a sink on loopback, hermod relaying to it (its embedded
# config/hermod.toml, an fsync before every 250), a warm-up of 2,000 messages, then
# `smtp-source -s 50 -m $N -l 1024` (one message per connection). From
# /proc/<hermod>/task/*/{stat,status} read before and after the measured run, it prints
# each busy thread's CPU (user + system) and context switches (voluntary, involuntary)
# per message, and the whole process's. On a shared machine the CPU figures drift from
# round to round; compare binaries within a round and take medians over several. Context
# switches per message drift much less.
#
# Usage: loadtest/bench_threads.sh BINARY...       N=40000 ROUNDS=3 by default
#        ROUNDS=5 loadtest/bench_threads.sh /tmp/hermod-before target/release/hermod
# PERF=1 also records `perf record -g` of hermod during each measured run into
# $PERF_DIR (default /tmp/hermod-threads) as <round>-<binary name>.data.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-40000}
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
source loadtest/lib.sh

# One line per thread: tid, name, CPU ticks, voluntary and involuntary switches.
threads_of() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' _ < "$t/comm")" \
      "$(awk '{print $14 + $15}' "$t/stat")" \
      "$(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' "$t/status")"
  done
}

measure() {
  local round=$1 binary=$2 sink_port hermod_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool"
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect $((N + 2000)) -q > /dev/null &
  local sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN=127.0.0.1:0 \
    "$binary" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
  local hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  /usr/sbin/smtp-source -s 50 -m 2000 -l 1024 "127.0.0.1:$hermod_port"
  sleep 1
  threads_of $hermod_pid > "$work/before"
  local perf_pid=
  if [ "${PERF:-0}" = 1 ]; then
    mkdir -p "${PERF_DIR:=/tmp/hermod-threads}"
    perf record -q -g -o "$PERF_DIR/$round-$(basename "$binary").data" -p $hermod_pid 2>/dev/null &
    perf_pid=$!; sleep 0.3
  fi
  local t0 t1
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -s 50 -m "$N" -l 1024 "127.0.0.1:$hermod_port"
  t1=$(date +%s.%N)
  # The deliveries that are still running when the client is done.
  sleep 1.5
  # perf exits non-zero when interrupted; its data file is complete all the same.
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  threads_of $hermod_pid > "$work/after"
  kill -TERM $hermod_pid; wait $hermod_pid || true
  kill $sink_pid 2>/dev/null || true; wait $sink_pid 2>/dev/null || true
  python3 - "$work/before" "$work/after" "$N" "$t0" "$t1" "$(getconf CLK_TCK)" "$(basename "$binary")" <<'PY'
import sys
before = {l.split()[0]: l.split() for l in open(sys.argv[1])}
after = {l.split()[0]: l.split() for l in open(sys.argv[2])}
n, t0, t1, hz, name = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
rows, total = [], [0.0, 0.0, 0.0]
for tid, now in after.items():
    then = before.get(tid, [tid, now[1], 0, 0, 0])
    row = [(int(now[2]) - int(then[2])) * 1e6 / hz / n, (int(now[3]) - int(then[3])) / n, (int(now[4]) - int(then[4])) / n]
    total = [a + b for a, b in zip(total, row)]
    if row[0] >= 0.5:
        rows.append((row, now[1]))
print(f"{name}: {total[0]:.1f} us/msg, {total[1]:.2f} voluntary + {total[2]:.2f} involuntary switches/msg, {n / (t1 - t0):.0f} msg/s sent")
for row, thread in sorted(rows, reverse=True):
    print(f"    {thread:18s} {row[0]:6.1f} us/msg  {row[1]:.2f} + {row[2]:.2f} switches/msg")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for binary in "$@"; do settle; measure "$round" "$binary"; done
done
