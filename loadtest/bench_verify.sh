#!/usr/bin/env bash
# Inbound verification end to end, side by side in one run: smtp-blaster → hermod (an MX
# gateway for relay.test, the client outside relay.networks) → sink, 1 KiB messages from
# news@bench.test signed by dkimpy (Ed25519: rbldnsd, the DNS server here, cuts TXT
# records at 255 octets, too short for an RSA-2048 key), 50 connections, one message per
# connection:
#   - plain-1:  no verification.
#   - verify-1: [mail_auth] verify = true: SPF at MAIL FROM (and of the HELO name
#               blaster.test), DKIM and DMARC (p=reject) at
#               the end of DATA, the records served by rbldnsd on loopback (answers cached
#               by hermod's resolver after the first message).
# Prints messages per second end to end, hermod's CPU per message, and how many messages
# reached the sink with dkim=pass and dmarc=pass in hermod's Authentication-Results.
#
# Usage: loadtest/bench_verify.sh          N=20000 C=50 REPEAT=1 by default
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-50}
SHAPES=${SHAPES:-"plain-1 verify-1"}
source loadtest/lib.sh

# The signed message template and the key's record.
/usr/bin/python3 - "$work" <<'PY'
import base64, sys, dkim, nacl.signing
work = sys.argv[1]
key = nacl.signing.SigningKey.generate()
body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n" * 11
message = ("From: News <news@bench.test>\r\nTo: <user@relay.test>\r\nSubject: Bench\r\n"
           "Date: Mon, 30 Nov 2026 06:00:00 +0000\r\nMessage-ID: <0@bench.test>\r\n\r\n" + body).encode()
signature = dkim.sign(message, b"e1", b"bench.test", base64.b64encode(bytes(key)),
                      signature_algorithm=b"ed25519-sha256",
                      include_headers=[b"from", b"to", b"subject", b"date"])
open(f"{work}/message.eml", "wb").write(signature + message)
public = base64.b64encode(bytes(key.verify_key)).decode()
open(f"{work}/test.zone", "w").write(
    'bench TXT "v=spf1 ip4:127.0.0.1 -all"\n'
    'blaster TXT "v=spf1 ip4:127.0.0.1 -all"\n'
    f'e1._domainkey.bench TXT "v=DKIM1; k=ed25519; p={public}"\n'
    '_dmarc.bench TXT "v=DMARC1; p=reject"\n')
PY
chmod 755 "$work"; chmod 644 "$work/test.zone"
dns_port=$(free_port)
rbldnsd -n -u nobody -b "127.0.0.1/$dns_port" -w "$work" test:generic:test.zone >/dev/null 2>&1 &

shape_config() {
  local file="$work/$1.toml"
  printf '[relay]\ndomains = ["relay.test"]\nnetworks = []\n[delivery]\ndns_servers = ["127.0.0.1:%s"]\n' "$dns_port" > "$file"
  case $1 in verify-*) printf '[mail_auth]\nverify = true\n' >> "$file" ;; esac
  echo "$file"
}

run_shape() {
  local shape=$1
  start_sink_and_hermod "$shape" "$(shape_config "$shape")"
  "$BIN/smtp-blaster" send -q -c "$C" -m "$N" -k 1 --pipelining --eml "$work/message.eml" --helo blaster.test \
    --from news@bench.test --to user@relay.test "127.0.0.1:$hermod_port"
  wait_sink_and_stop_hermod
  local passed
  passed=$( (grep -rlZ "dkim=pass" "$work/sink-$shape" 2>/dev/null | xargs -0 -r grep -l "dmarc=pass" || true) | wc -l)
  if [ "$shape" != plain-1 ] && [ "$passed" -eq 0 ]; then
    echo "no message passed DKIM and DMARC; hermod's log:" >&2; grep -m5 "verdict" "$work/hermod.log" >&2 || tail -5 "$work/hermod.log" >&2
  fi
  rm -rf "$work/sink-$shape"
  print_run "$shape" "dkim_and_dmarc_pass_at_sink=$passed"
}

run_rounds
