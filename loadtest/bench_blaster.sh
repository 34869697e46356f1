#!/usr/bin/env bash
# Side-by-side benchmark: smtp-blaster and its sink against Postfix's smtp-source and
# smtp-sink, 1 KiB messages over 50 connections, with one message per connection and
# with connection reuse (blaster: 100 per connection; smtp-source: -d).
#
#   loadtest/bench_blaster.sh            # MSGS=20000 RUNS=3 SOAK_SECONDS=30 TW_LIMIT=2000
#
# Every pairing is timed the same way: wall clock around the client process, so a
# client's own report cannot flatter it. Each figure is the median of RUNS runs. Before
# each run the script waits until no rustc is running (builds on a 2-core machine
# would distort it). Traffic goes to 127.0.0.1 only.
set -euo pipefail

MSGS=${MSGS:-20000}
RUNS=${RUNS:-3}
SOAK_SECONDS=${SOAK_SECONDS:-30}
TW_LIMIT=${TW_LIMIT:-2000}
SESSIONS=50
SIZE=1024
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SMTP_SINK=/usr/sbin/smtp-sink
SMTP_SOURCE=/usr/sbin/smtp-source

for tool in "$SMTP_SINK" "$SMTP_SOURCE"; do
  [ -x "$tool" ] || { echo "missing $tool: apt-get install postfix" >&2; exit 1; }
done

echo "building smtp-blaster (release)..." >&2
(cd "$ROOT" && cargo build --release -p smtp-blaster >&2)
BLASTER="$ROOT/target/release/smtp-blaster"

SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody)

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# No compiler (nor hermod's own benchmark) running, and (before a connection-per-message run) the TIME_WAIT sockets
# of earlier runs drained, so every pairing starts from the same state: thousands of
# TIME_WAIT sockets make each connect() search longer for a free port.
wait_quiet() {
  local reuse=$1 waited=0
  while pgrep -x rustc >/dev/null || pgrep -f 'rustc ' >/dev/null || pgrep -f bench_hermod >/dev/null; do
    sleep 2
  done
  [ "$reuse" = 1 ] && return 0
  while [ "$(ss -tan state time-wait | wc -l)" -gt "$TW_LIMIT" ] && [ $waited -lt 75 ]; do
    sleep 1; waited=$((waited + 1))
  done
}

wait_listening() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; exit 1
}

# start_server KIND PORT: "postfix" or "blaster"; prints the PID.
start_server() {
  case $1 in
    postfix) "$SMTP_SINK" "${SINK_USER[@]}" "127.0.0.1:$2" 1024 >/dev/null 2>&1 & ;;
    blaster) "$BLASTER" sink --listen "127.0.0.1:$2" --quiet >/dev/null 2>&1 & ;;
  esac
  echo $!
}

# run_client KIND PORT REUSE: prints "RATE BUSY": messages per second (wall clock) and
# how busy the client kept the CPU (user+system time over wall time, in percent of one
# core; a multi-threaded client can pass 100). A single-threaded client near 100% is
# the bottleneck: no server can make it go faster.
run_client() {
  local kind=$1 port=$2 reuse=$3 times
  local TIMEFORMAT='%R %U %S'
  times=$( { time client "$kind" "$port" "$reuse" >/dev/null 2>&1; } 2>&1 )
  set -- $times
  awk -v n="$MSGS" -v r="$1" -v u="$2" -v s="$3" 'BEGIN { printf "%.0f %.0f", n / r, 100 * (u + s) / r }'
}

client() {
  local kind=$1 port=$2 reuse=$3
  case $kind in
    postfix)
      if [ "$reuse" = 1 ]; then
        "$SMTP_SOURCE" -d -s $SESSIONS -m "$MSGS" -l $SIZE "127.0.0.1:$port"
      else
        "$SMTP_SOURCE" -s $SESSIONS -m "$MSGS" -l $SIZE "127.0.0.1:$port"
      fi ;;
    blaster)
      local k=1
      [ "$reuse" = 1 ] && k=100
      "$BLASTER" send "127.0.0.1:$port" -c $SESSIONS -m "$MSGS" -k $k --size $SIZE --pipelining --chunking --quiet ;;
  esac
}

median() { tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# measure CLIENT SERVER REUSE: one run against a fresh server on a fresh port.
PORT=40025
measure() {
  local pid result
  PORT=$((PORT + 1))
  wait_quiet "$3"
  pid=$(start_server "$2" $PORT); PIDS+=("$pid")
  wait_listening $PORT
  result=$(run_client "$1" $PORT "$3")
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  echo "$result"
}

# Runs are interleaved (run 1 of every pairing, then run 2 ...), so every pairing sees
# the same machine state (TIME_WAIT sockets, other load); the median is reported.
PAIRS=("postfix postfix" "blaster blaster" "blaster postfix" "postfix blaster")
declare -A ALL BUSY R B
for run in $(seq 1 "$RUNS"); do
  for reuse in 0 1; do
    for pair in "${PAIRS[@]}"; do
      set -- $pair
      read -r rate busy < <(measure "$1" "$2" "$reuse")
      ALL[$1-$2-$reuse]="${ALL[$1-$2-$reuse]:-} $rate"
      BUSY[$1-$2-$reuse]="${BUSY[$1-$2-$reuse]:-} $busy"
      echo "  run $run: $1 -> $2, reuse=$reuse: $rate msg/s, client CPU $busy%" >&2
    done
  done
done
for key in "${!ALL[@]}"; do
  R[$key]=$(echo ${ALL[$key]} | median)
  B[$key]=$(echo ${BUSY[$key]} | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "ok" : "BELOW") }'; }

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "messages: $MSGS x ${SIZE} B, $SESSIONS connections, median of $RUNS interleaved runs"
echo "smtp-blaster send: --pipelining --chunking (each used only when offered), -k 1 or -k 100;"
echo "smtp-blaster sink: defaults (one event loop); smtp-source: -s $SESSIONS -l $SIZE [-d]"
echo
printf '| %-40s | %16s | %8s | %10s | %11s | %8s | %10s |\n' "pairing" "1 msg/conn msg/s" "vs base" "client CPU" "reuse msg/s" "vs base" "client CPU"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------" "-----------------:" "---------:" "-----------:" "------------:" "---------:" "-----------:"
for pair in "postfix postfix smtp-source -> smtp-sink (base)" \
            "blaster blaster smtp-blaster -> blaster sink (>= 1.5x)" \
            "blaster postfix smtp-blaster -> smtp-sink (>= 1.2x)" \
            "postfix blaster smtp-source -> blaster sink (>= 1.2x)"; do
  set -- $pair
  c=$1 s=$2; shift 2
  a=${R[$c-$s-0]} b=${R[$c-$s-1]}
  ra=$(ratio "$a" "${R[postfix-postfix-0]}") rb=$(ratio "$b" "${R[postfix-postfix-1]}")
  printf '| %-40s | %16s | %7sx | %9s%% | %11s | %7sx | %9s%% |\n' "$*" "$a" "$ra" "${B[$c-$s-0]}" "$b" "$rb" "${B[$c-$s-1]}"
done
echo
for pair in "blaster blaster 1.5" "blaster postfix 1.2" "postfix blaster 1.2"; do
  set -- $pair
  for reuse in 0 1; do
    r=$(ratio "${R[$1-$2-$reuse]}" "${R[postfix-postfix-$reuse]}")
    echo "$1 -> $2 reuse=$reuse: ${r}x (needs $3x): $(verdict "$r" "$3")"
  done
done
# smtp-source is one single-threaded process: at (nearly) a whole core it is the
# bottleneck of its pairing, and the server's speed no longer shows in the rate.
for reuse in 0 1; do
  busy=${B[postfix-blaster-$reuse]}
  if [ "$busy" -ge 95 ]; then
    echo "smtp-source -> blaster sink reuse=$reuse: smtp-source used ${busy}% of its core," \
      "so the client, not the sink, set this rate"
  fi
done

if [ "$SOAK_SECONDS" -gt 0 ]; then
  echo
  echo "sink memory over a ${SOAK_SECONDS}s run (blaster -> blaster sink, 100 per connection):"
  PORT=$((PORT + 1))
  wait_quiet 1
  pid=$(start_server blaster $PORT); PIDS+=("$pid")
  wait_listening $PORT
  "$BLASTER" send "127.0.0.1:$PORT" -c $SESSIONS --duration "${SOAK_SECONDS}s" -k 100 --size $SIZE --pipelining --quiet &
  client=$!
  step=$(( SOAK_SECONDS / 6 > 0 ? SOAK_SECONDS / 6 : 1 ))
  for t in $(seq "$step" "$step" "$SOAK_SECONDS"); do
    sleep "$step"
    echo "  t=${t}s sink RSS $(awk '/VmRSS/ { print $2, $3 }' "/proc/$pid/status")"
  done
  wait "$client" || true
  echo "  peak RSS $(awk '/VmHWM/ { print $2, $3 }' "/proc/$pid/status")"
  kill "$pid" 2>/dev/null || true
fi
