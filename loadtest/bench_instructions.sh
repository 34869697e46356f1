#!/usr/bin/env bash
# Instructions a message costs hermod in user space, for two or more hermod binaries side
# by side: a count that a shared machine's drifting speed does not move, where timings
# (bench_hermod.sh, bench_threads.sh) cannot separate changes of a few percent.
#
# Each binary runs under valgrind's cachegrind (instruction counts only) with its embedded
# config/hermod.toml, relaying to a sink on loopback, twice: $SMALL and then $LARGE
# messages of 1 KiB from `smtp-source -s 20` (one message per connection). The difference
# divided by the difference in messages is the cost of one message, without start-up
# and shutdown. The kernel's part (system calls, TCP) is not counted: count those with
# bench_threads.sh and nstat.
#
# Limits of the count:
# - metrics are off (METRICS_ENABLED=false): valgrind cannot run the process-metrics
#   collector the Prometheus recorder starts (it reads the vDSO valgrind leaves out);
# - sled's thread pool spins while its first use starts its threads, for as long as
#   valgrind's serialised scheduling lets it: that function (`sled::lazy::Lazy::deref`) is
#   left out of the sum;
# - `rep movsb` counts one instruction an octet under valgrind, so large copies weigh more
#   than they cost;
# - two identical runs still differ by 2-3 % (threads interleave differently).
# With TOP=n it also lists the n functions whose cost a message changed most between the
# first binary and each other one.
#
# Usage: loadtest/bench_instructions.sh BINARY...    SMALL=500 LARGE=2500 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${SMALL:-500}
LARGE=${LARGE:-2500}
ROUNDS=${ROUNDS:-2}
TOP=${TOP:-0}
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
source loadtest/lib.sh

# Runs binary $1 under cachegrind for $2 messages; its counts go to file $3.
count_run() {
  local sink_port hermod_port hermod_pid sink_pid
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool"
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$2" -q > /dev/null &
  sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT=$hermod_port SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN= METRICS_ENABLED=false \
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$3" \
    "$1" serve --config config/hermod.toml > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  # Under valgrind hermod takes seconds to start.
  for _ in $(seq 1 600); do (echo > /dev/tcp/127.0.0.1/$hermod_port) 2>/dev/null && break; sleep 0.1; done
  /usr/sbin/smtp-source -s 20 -m "$2" -l 1024 "127.0.0.1:$hermod_port"
  if ! timeout 300 tail --pid="$sink_pid" -f /dev/null; then echo "sink did not receive its messages" >&2; fi
  kill -TERM "$hermod_pid"; wait "$hermod_pid" || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  files=()
  for binary in "$@"; do
    name=$(basename "$binary")
    count_run "$binary" "$SMALL" "$work/$name-small.out"
    count_run "$binary" "$LARGE" "$work/$name-large.out"
    files+=("$name" "$work/$name-small.out" "$work/$name-large.out")
  done
  python3 - "$((LARGE - SMALL))" "$TOP" "${files[@]}" <<'PY'
import collections, sys
span, top, rest = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
SPIN = "sled::lazy::Lazy"
def counts(path):
    per, fn = collections.Counter(), None
    for line in open(path):
        if line.startswith("fn="):
            fn = line[3:].strip()
        elif line[:1].isdigit() and fn and SPIN not in fn:
            parts = line.split()
            if len(parts) >= 2:
                per[fn] += int(parts[1])
    return per
runs = []
for i in range(0, len(rest), 3):
    small, large = counts(rest[i + 1]), counts(rest[i + 2])
    per = {f: (large[f] - small[f]) / span for f in set(small) | set(large)}
    runs.append((rest[i], per))
    print(f"{rest[i]}: {sum(per.values()):,.0f} instructions/msg")
for name, per in runs[1:]:
    if top <= 0:
        break
    first = runs[0][1]
    change = {f: per.get(f, 0) - first.get(f, 0) for f in set(per) | set(first)}
    print(f"  {name} against {runs[0][0]}, the largest changes:")
    for f, d in sorted(change.items(), key=lambda kv: abs(kv[1]), reverse=True)[:top]:
        print(f"    {d:+9,.0f}  {f[:110]}")
PY
done
