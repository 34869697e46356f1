# Shared by the hermod benchmark scripts (source it from the repository root): builds
# the release binaries, makes a work directory removed on exit with every background
# job, and gives loopback port helpers.
BIN=target/release
cargo build --release -q -p hermod -p smtp-blaster
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A loopback port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (up to 10 s) until something accepts connections on loopback port $1.
wait_port() { for _ in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
