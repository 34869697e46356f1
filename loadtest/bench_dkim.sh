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
  local shape=$1
  start_sink_and_hermod "$shape" "$(shape_config "$shape")"
  "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --size "$SIZE" --pipelining --from news@shop.test "127.0.0.1:$hermod_port"
  wait_sink_and_stop_hermod
  local signed
  signed=$( (grep -rl "DKIM-Signature" "$work/sink-$shape" 2>/dev/null || true) | wc -l)
  rm -rf "$work/sink-$shape"
  print_run "$shape" "signed_at_sink=$signed"
}

run_rounds
