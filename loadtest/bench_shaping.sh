#!/usr/bin/env bash
# What provider-aware shaping costs delivery (issue 23): smtp-blaster send → hermod → MX
# delivery to smtp-blaster's sink, 1 KiB messages to 10,000 recipient domains
# (d0 … d9999.bench.test), whose MX records (a DNS server on loopback: nsd, with one zone of
# 10,000 MX records) name the hosts of three providers (mx1/mx2.alpha.test, mx.beta.test,
# mx1/mx2/mx3.gamma.test), all at the sink.
#
# Shapes:
#   - plain:   no shaping file: each domain is its own next hop with its own limits.
#   - rollup:  a shaping file whose three providers roll the 10,000 domains up into 3
#              sites: every connection and message asks its site's budget (limits set
#              high enough not to bind: the cost of the bookkeeping, not of a limit).
#
# Usage: loadtest/bench_shaping.sh             N=50000 C=50 DOMAINS=10000 REPEAT=1
#        REPEAT=3 loadtest/bench_shaping.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50000}
C=${C:-50}
DOMAINS=${DOMAINS:-10000}
SHAPES=${SHAPES:-"plain rollup"}
[ -x /usr/sbin/nsd ] || { echo "needs nsd (apt-get install nsd)" >&2; exit 1; }
source loadtest/lib.sh

# The zone: domain i's MX hosts are a third's provider's.
{
  echo "\$ORIGIN test."
  echo "\$TTL 3600"
  echo "@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 3600"
  echo "@ IN NS ns.test."
  echo "ns IN A 127.0.0.1"
  for host in mx1.alpha mx2.alpha mx.beta mx1.gamma mx2.gamma mx3.gamma; do
    echo "$host IN A 127.0.0.1"
  done
  for i in $(seq 0 $((DOMAINS - 1))); do
    case $((i % 3)) in
      0) echo "d$i.bench IN MX 10 mx1.alpha.test."; echo "d$i.bench IN MX 20 mx2.alpha.test." ;;
      1) echo "d$i.bench IN MX 10 mx.beta.test." ;;
      2) echo "d$i.bench IN MX 10 mx$((i / 3 % 2 + 1)).gamma.test."; echo "d$i.bench IN MX 20 mx3.gamma.test." ;;
    esac
  done
} > "$work/test.zone"
start_nsd "test" test.zone

cat > "$work/shaping.toml" <<TOML
[provider.alpha]
mx_suffix = [".alpha.test"]
max_connections = 20000
message_rate = "100000/s"
[provider.beta]
mx_suffix = [".beta.test"]
max_connections = 20000
message_rate = "100000/s"
[provider.gamma]
mx_suffix = [".gamma.test"]
max_connections = 20000
message_rate = "100000/s"
TOML

run_shape() {
  local shape=$1 shaping_file=""
  [ "$shape" = rollup ] && shaping_file="$work/shaping.toml"
  local sink_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  cat > "$work/hermod.toml" <<TOML
[delivery]
dns_servers = ["127.0.0.1:$dns_port"]
mx_port = $sink_port
tls = "none"
mta_sts = false
shaping_file = "$shaping_file"
[admin]
listen = ""
TOML
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$N" -q --json "$work/sink.json" &
  sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT="$hermod_port" SMTP_DB_PATH="$work/spool" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 \
    "$BIN/hermod" serve --config "$work/hermod.toml" > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  cpu0=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  t0=$(date +%s.%N)
  "$BIN/smtp-blaster" send "127.0.0.1:$hermod_port" -c "$C" -m "$N" -s 1k --pipelining \
    --domains "$DOMAINS" --domain-suffix bench.test --from sender@shop.test -q > /dev/null
  wait_sink_and_stop_hermod
  [ -n "${KEEP_LOG:-}" ] && cp "$work/hermod.log" "$KEEP_LOG.$shape"
  local sent
  sent=$(grep -c 'status="sent"' "$work/hermod.log" || true)
  print_run "$shape" "sent=$sent"
}

run_rounds
stop_nsd
