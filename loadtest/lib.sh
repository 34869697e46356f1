# Shared by the hermod benchmark scripts (source it from the repository root): builds
# the release binaries, makes a work directory removed on exit with every background
# job, and gives loopback port helpers.
BIN=target/release
cargo build --release -q -p hermod -p smtp-blaster
work=$(mktemp -d)
# On exit: every background job and its children (a sink runs under time(1)), and a
# Postfix smtpd service a benchmark added to master.cf ($POSTFIX_SERVICE).
cleanup() {
  local job
  for job in $(jobs -p); do pkill -P "$job" 2>/dev/null || true; kill "$job" 2>/dev/null || true; done
  [ -n "${POSTFIX_SERVICE:-}" ] && postconf -X -M "$POSTFIX_SERVICE" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Waits (up to 300 s) for sink $1 to exit after its --expect count and prints when it
# accepted its last message, from its --json file $2: the end of an end-to-end run. The
# sink's exit is later than that: it first gives the relay's idle connections their
# shutdown grace (2 s), which would count against a relay that keeps connections open.
sink_last_message() {
  if ! timeout 300 tail --pid="$1" -f /dev/null; then echo "sink did not receive its messages" >&2; fi
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["last_message_unix_s"])' "$2" 2>/dev/null || date +%s.%N
}

# A loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (up to 10 s) until something accepts connections on loopback port $1.
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

# Between shapes of a benchmark: let the previous server's processes exit (Postfix's exit
# over several seconds after `postfix stop`, while its queue files are written back) and
# the disk settle, and wait for the previous run's TIME_WAIT sockets (one per connection)
# to expire, so that every shape starts from the same socket table.
settle() {
  for _ in $(seq 1 60); do
    pgrep -u postfix >/dev/null 2>&1 || break
    sleep 1
  done
  sync
  for _ in $(seq 1 90); do
    [ "$(ss -tan state time-wait | wc -l)" -lt 500 ] && break
    sleep 1
  done
  sleep 2
}

# Names the machine, then runs every shape of $SHAPES with the script's run_shape, after
# settle, $REPEAT times (1 by default), round by round, so shapes are compared side by
# side.
run_rounds() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  REPEAT=${REPEAT:-1}
  for round in $(seq 1 "$REPEAT"); do
    [ "$REPEAT" -gt 1 ] && echo "round $round"
    for shape in $SHAPES; do settle; run_shape "$shape"; done
  done
}

# For run_shape: starts a sink that stores in $work/sink-$1 and expects $N messages, and
# hermod with config file $2 relaying to it (spool in $work/spool, log in
# $work/hermod.log); sets sink_pid, hermod_pid, hermod_port, and t0 and cpu0 (hermod's CPU
# ticks) once both listen.
start_sink_and_hermod() {
  local sink_port
  sink_port=$(free_port); hermod_port=$(free_port)
  rm -rf "$work/spool" "$work/sink.json"
  "$BIN/smtp-blaster" sink --listen "127.0.0.1:$sink_port" --no-starttls --expect "$N" -q --store "$work/sink-$1" --json "$work/sink.json" &
  sink_pid=$!
  SMTP_HOST=127.0.0.1 SMTP_PORT="$hermod_port" SMTP_DB_PATH="$work/spool" SMTP_RELAYHOST="[127.0.0.1]:$sink_port" \
    SMTP_MAX_CONNECTIONS=2000 SMTP_MAX_CONNECTIONS_PER_IP=2000 HERMOD_ADMIN_LISTEN= \
    "$BIN/hermod" serve --config "$2" > "$work/hermod.log" 2>&1 &
  hermod_pid=$!
  wait_port "$sink_port"; wait_port "$hermod_port"
  cpu0=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  t0=$(date +%s.%N)
}

# For run_shape, after wait_sink_and_stop_hermod: one result line for shape $1 with the
# count $2 (say `signed_at_sink=20000`), end to end from t0 to t1, and hermod's CPU.
print_run() {
  python3 - "$1" "$2" "$N" "$t0" "$t1" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" <<'PY'
import sys
shape, count, n, t0, t1, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cpu = ticks / hz
print(f"{shape:11s} messages={n} {count} end-to-end={n/(t1-t0):7.0f}/s elapsed={t1-t0:6.2f}s cpu={cpu:5.1f}s ({cpu*1e6/n:4.0f}us/msg)")
PY
}

# For run_shape: waits (up to 300 s) for the sink to get its messages, sets t1 and cpu1,
# and stops hermod.
wait_sink_and_stop_hermod() {
  t1=$(sink_last_message "$sink_pid" "$work/sink.json")
  cpu1=$(awk '{print $14 + $15}' /proc/$hermod_pid/stat)
  kill -TERM $hermod_pid; wait $hermod_pid || true
}

# Serves zone $1 from file $2 (in $work) with nsd on a free loopback port, in the
# background; sets dns_port and nsd_pid (stop it with stop_nsd once the rounds are run).
start_nsd() {
  dns_port=$(free_port)
  cat > "$work/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$dns_port
  port: $dns_port
  username: ""
  chroot: ""
  zonesdir: "$work"
  database: ""
  zonelistfile: "$work/zone.list"
  pidfile: "$work/nsd.pid"
  xfrdfile: "$work/xfrd.state"
  xfrdir: "$work"
  logfile: "$work/nsd.log"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: "$1"
  zonefile: "$2"
CONF
  /usr/sbin/nsd -d -c "$work/nsd.conf" &
  nsd_pid=$!
  sleep 1
}

# Stops the nsd of start_nsd and waits for it: its processes write their files until they
# are gone.
stop_nsd() {
  kill "$nsd_pid"; wait "$nsd_pid" 2>/dev/null || true
}
