#!/usr/bin/env bash
# What honouring DANE costs delivery (issue 24): smtp-source → hermod → MX delivery over
# STARTTLS to smtp-blaster's sink, 1 KiB messages, one per connection, every one to
# user@bench.test, whose MX (mx.bench.test) and its TLSA record (3 1 1 of the sink's key)
# come from a DNSSEC-signed root zone (ldns-signzone, Debian's ldnsutils) served by nsd on
# loopback; hermod validates it from the zone's own key as trust anchor.
#
# Shapes:
#   - verify:  delivery.tls = "verify", DANE off: every connection's certificate
#              verified against the CA, nothing looked up but the MX.
#   - dane:    delivery.tls = "opportunistic", delivery.dane = true: each job takes the
#              domain's DANE answer (validated MX and TLSA, kept 30 s) and the
#              certificate is checked against the TLSA record.
#
# Usage: loadtest/bench_dane.sh             N=20000 C=50 SIZE=1024 REPEAT=1
#        REPEAT=3 loadtest/bench_dane.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SIZE=${SIZE:-1024}
SHAPES=${SHAPES:-"verify dane"}
for tool in ldns-signzone ldns-keygen nsd; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "needs $tool (apt-get install ldnsutils nsd)" >&2; exit 1; }
done
source loadtest/lib.sh

# A CA, and the MX's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/mx.key" -out "$work/mx.csr" -subj "/CN=mx.bench.test" 2>/dev/null
openssl x509 -req -in "$work/mx.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -out "$work/mx.pem" -extfile <(printf "subjectAltName=DNS:mx.bench.test") 2>/dev/null
cat "$work/ca.pem" >> "$work/mx.pem"
tlsa=$(openssl x509 -in "$work/mx.pem" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)

# The signed root zone: the sink's port is fixed for every shape, as the TLSA name holds it.
sink_port=$(free_port)
cat > "$work/root.zone" <<ZONE
.                     3600 IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 3600
.                     3600 IN NS  ns.bench.test.
ns.bench.test.        3600 IN A   127.0.0.1
bench.test.           3600 IN MX  10 mx.bench.test.
mx.bench.test.        3600 IN A   127.0.0.1
_$sink_port._tcp.mx.bench.test. 3600 IN TLSA 3 1 1 $tlsa
ZONE
(cd "$work" && key=$(ldns-keygen -a ECDSAP256SHA256 -k .) && ldns-signzone -f root.zone.signed root.zone "$key" \
  && sed 's/;.*//' "$key.key" > anchor.keys)
start_nsd "." root.zone.signed

run_shape() {
  local shape=$1 tls dane
  case $shape in
    verify) tls=verify; dane=false ;;
    dane) tls=opportunistic; dane=true ;;
  esac
  hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  cat > "$work/hermod.toml" <<TOML
[delivery]
dns_servers = ["127.0.0.1:$dns_port"]
mx_port = $sink_port
tls = "$tls"
tls_ca_file = "$work/ca.pem"
mta_sts = false
dane = $dane
dane_trust_anchor = "$work/anchor.keys"
[admin]
listen = ""
TOML
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --tls-cert "$work/mx.pem" \
    --tls-key "$work/mx.key" --expect "$N" -q --json "$work/sink.json" &
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
  local sent
  sent=$(grep -c 'status="sent"' "$work/hermod.log" || true)
  echo "$shape: $(grep 'status="sent"' "$work/hermod.log" | grep -vc 'tls="none"' || true) of $sent sent over TLS; $(grep -c 'DANE' "$work/hermod.log" || true) DANE log lines"
  print_run "$shape" "sent=$sent"
  if [ "$shape" = dane ]; then
    "$BIN/hermod" route bench.test --config "$work/hermod.toml" | grep 'DANE'
  fi
}

run_rounds
stop_nsd
