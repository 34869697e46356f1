#!/usr/bin/env bash
# What honouring MTA-STS costs delivery (issue 24): smtp-source → hermod → MX delivery
# over STARTTLS to smtp-blaster's sink, 1 KiB messages, one per connection, every one
# to user@bench.test, whose MX (mx.bench.test) is found through a DNS server on loopback
# (dnsmasq, Debian's dnsmasq-base) and whose policy an HTTPS server on loopback serves
# (Python's standard library, certificate from a CA made here with openssl).
#
# Shapes:
#   - verify:  delivery.tls = "verify", delivery.mta_sts = false: every connection's
#              certificate verified, no policy looked up.
#   - sts:     delivery.tls = "opportunistic", delivery.mta_sts = true, the domain's
#              policy in enforce: each job looks up the _mta-sts record (hickory's cache)
#              and uses the policy kept after the first fetch, which demands verify.
#
# Usage: loadtest/bench_mta_sts.sh             N=20000 C=50 SIZE=1024 REPEAT=1
#        REPEAT=3 loadtest/bench_mta_sts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"verify sts"}
command -v dnsmasq >/dev/null || { echo "needs dnsmasq (apt-get install dnsmasq-base)" >&2; exit 1; }
source loadtest/lib.sh

# A CA, and certificates for the MX and the policy host.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=bench CA" 2>/dev/null
for host in mx.bench.test mta-sts.bench.test; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/$host.key" -out "$work/$host.csr" -subj "/CN=$host" 2>/dev/null
  openssl x509 -req -in "$work/$host.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -out "$work/$host.pem" -extfile <(printf "subjectAltName=DNS:%s" "$host") 2>/dev/null
done

dns_port=$(free_port)
dnsmasq --keep-in-foreground --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --no-dhcp-interface= --pid-file= --local-ttl=3600 \
  --mx-host=bench.test,mx.bench.test,10 --host-record=mx.bench.test,127.0.0.1 \
  --host-record=mta-sts.bench.test,127.0.0.1 --txt-record=_mta-sts.bench.test,"v=STSv1; id=1" &
https_port=$(free_port)
mkdir -p "$work/policies"
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.bench.test\r\nmax_age: 86400\r\n' > "$work/policies/mta-sts.bench.test.txt"
python3 loadtest/mta_sts_policy_server.py "$https_port" "$work/mta-sts.bench.test.pem" "$work/mta-sts.bench.test.key" "$work/policies" &
wait_port "$https_port"

run_shape() {
  local shape=$1 tls mta_sts
  case $shape in
    verify) tls=verify; mta_sts=false ;;
    sts) tls=opportunistic; mta_sts=true ;;
  esac
  local sink_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  cat > "$work/hermod.toml" <<TOML
[delivery]
dns_servers = ["127.0.0.1:$dns_port"]
mx_port = $sink_port
tls = "$tls"
tls_ca_file = "$work/ca.pem"
mta_sts = $mta_sts
mta_sts_port = $https_port
[admin]
listen = ""
TOML
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --tls-cert "$work/mx.bench.test.pem" \
    --tls-key "$work/mx.bench.test.key" --expect "$N" -q --json "$work/sink.json" &
  sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT="$hermod_port" SMTP_DB_PATH="$work/spool" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 \
    "$BIN/hermod" serve --config "$work/hermod.toml" > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  cpu0=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -s "$C" -m "$N" -l "$SIZE" -f sender@shop.test -t user@bench.test "127.0.0.1:$hermod_port"
  wait_sink_and_stop_hermod
  local tls_lines
  tls_lines=$(grep -c 'status="sent"' "$work/hermod.log" || true)
  echo "$shape: fetched $(grep -c 'MTA-STS policy fetched' "$work/hermod.log" || true) policies; $(grep 'status="sent"' "$work/hermod.log" | grep -vc 'tls="none"' || true) of $tls_lines sent over TLS"
  print_run "$shape" "sent=$tls_lines"
}

run_rounds
