#!/usr/bin/env bash
# DKIM signing end to end, side by side in one run: smtp-blaster → hermod → sink, 1 KiB
# messages from news@shop.test, 50 connections, one message per connection, the client
# trusted (so every message is signed when a key is configured):
#   - unsigned-1: no [dkim] key.
#   - rsa-1:      an RSA-2048 key for shop.test.
#   - ed25519-1:  an Ed25519 key for shop.test.
# Prints messages per second end to end and hermod's CPU per message.
#
# Usage: loadtest/bench_dkim.sh          N=20000 C=50 SIZE=1024 REPEAT=1 by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"unsigned-1 rsa-1 ed25519-1"}
source loadtest/lib.sh

"$BIN/hermod" dkim keygen --domain shop.test --selector s1 --out "$work/rsa.key" >/dev/null
"$BIN/hermod" dkim keygen --domain shop.test --selector e1 --algorithm ed25519 --out "$work/ed25519.key" >/dev/null

shape_config() {
  local file="$work/$1.toml"
  : > "$file"
  case $1 in
    rsa-*) printf '[[dkim.keys]]\ndomain = "shop.test"\nselector = "s1"\nkey_file = "%s"\n' "$work/rsa.key" > "$file" ;;
    ed25519-*) printf '[[dkim.keys]]\ndomain = "shop.test"\nselector = "e1"\nkey_file = "%s"\n' "$work/ed25519.key" > "$file" ;;
  esac
  echo "$file"
}

run_shape() {
  local shape=$1 sink_port hermod_port hermod_pid
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool"
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$N" -q --store "$work/sink-$shape" &
  local sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT="$hermod_port" SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN= \
    "$BIN/hermod" serve --config "$(shape_config "$shape")" > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  local t0 t1 cpu0 cpu1
  cpu0=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  t0=$(date +%s.%N)
  "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --size "$SIZE" --pipelining --from news@shop.test "127.0.0.1:$hermod_port"
  if ! timeout 300 tail --pid=$sink_pid -f /dev/null; then echo "sink did not receive $N messages" >&2; fi
  t1=$(date +%s.%N)
  cpu1=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  kill -TERM $hermod_pid; wait $hermod_pid || true
  local signed
  signed=$( (grep -rl "DKIM-Signature" "$work/sink-$shape" 2>/dev/null || true) | wc -l)
  rm -rf "$work/sink-$shape"
  python3 - "$shape" "$N" "$t0" "$t1" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$signed" <<'PY'
import sys
shape, n, t0, t1, ticks, hz, signed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cpu = ticks / hz
print(f"{shape:11s} messages={n} signed_at_sink={signed} end-to-end={n/(t1-t0):7.0f}/s elapsed={t1-t0:6.2f}s cpu={cpu:5.1f}s ({cpu*1e6/n:4.0f}us/msg)")
PY
}

run_rounds
