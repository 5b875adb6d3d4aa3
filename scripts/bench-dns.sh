#!/usr/bin/env bash
# Measures DNS queries/s with dnsperf against Prism and, in the same run, against NSD serving
# an equivalent zone (SPEC §11: Prism must reach >= 90 % of NSD). Loopback only; bounded.
#
#   scripts/bench-dns.sh [seconds-per-run (default 15)] [rounds (default 2)]
#
# Needs the Debian packages dnsperf and nsd (installed here when missing) and python3.
# Not part of the test suite: it is a measurement, and its numbers depend on the machine.
set -euo pipefail

SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-2}"
PRISM_DNS_PORT=5355
NSD_PORT=5354
REG_PORT=18090
HOSTS=100
ZONE=managed.prism.local
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

for tool in dnsperf nsd; do
  if ! command -v "$tool" >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends dnsperf nsd >/dev/null
  fi
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -q -p prism-server)

# --- Prism -----------------------------------------------------------------------------
PRISM_SERVER_HOST=127.0.0.1 PRISM_SERVER_API_PORT=0 PRISM_DNS_PORT=$PRISM_DNS_PORT \
PRISM_LOGGING_LEVEL=warn PRISM_DNS_RRL_RESPONSES_PER_SECOND=0 \
PRISM_RATE_LIMIT_MIN_HEARTBEAT_INTERVAL_SECS=0 \
  "$ROOT/target/release/prism-server" --auth-mode open --rate-limit 0 --tcp-port $REG_PORT \
  --database-path "$WORK/prism.db" >"$WORK/prism.out" 2>"$WORK/prism.err" &
PIDS+=($!)
for _ in $(seq 50); do grep -q "answering DNS" "$WORK/prism.out" 2>/dev/null && break; sleep 0.1; done
grep -q "answering DNS" "$WORK/prism.out" || { cat "$WORK/prism.err"; exit 1; }

python3 - "$REG_PORT" "$HOSTS" <<'EOF'
import json, socket, struct, sys
port, hosts = int(sys.argv[1]), int(sys.argv[2])
with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    for n in range(hosts):
        body = json.dumps({"version": "1.0", "type": "registration",
                           "timestamp": "2026-11-26T10:00:00Z", "hostname": f"host-{n}"}).encode()
        s.sendall(struct.pack(">I", len(body)) + body)
        size = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
        reply = json.loads(s.recv(size, socket.MSG_WAITALL))
        assert reply["status"] == "success", reply
EOF

# --- NSD with the same zone content ------------------------------------------------------
{
  echo "\$ORIGIN $ZONE."
  echo "\$TTL 60"
  echo "@ IN SOA ns1.$ZONE. hostmaster.$ZONE. 1 3600 600 604800 60"
  echo "@ IN NS ns1.$ZONE."
  for n in $(seq 0 $((HOSTS - 1))); do echo "host-$n IN A 127.0.0.1"; done
} >"$WORK/$ZONE.zone"
cat >"$WORK/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$NSD_PORT
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$WORK"
  pidfile: "$WORK/nsd.pid"
  xfrdfile: "$WORK/xfrd.state"
  zonelistfile: "$WORK/zone.list"
  database: ""
  logfile: "$WORK/nsd.log"
  server-count: $(nproc)
  reuseport: yes
  verbosity: 0
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: $ZONE
  zonefile: $ZONE.zone
EOF
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.stdout" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p $NSD_PORT host-1.$ZONE A >/dev/null 2>&1 && break; sleep 0.1; done

# --- Same queries for both: 90 % hits, 10 % NXDOMAIN ------------------------------------
for n in $(seq 0 $((HOSTS - 1))); do echo "host-$n.$ZONE A"; done >"$WORK/queries.txt"
for n in $(seq 0 $((HOSTS / 9))); do echo "missing-$n.$ZONE A"; done >>"$WORK/queries.txt"

for server in "Prism $PRISM_DNS_PORT" "NSD $NSD_PORT"; do
  set -- $server
  answer="$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$2" host-1.$ZONE A)"
  [ "$answer" = "127.0.0.1" ] || { echo "$1 does not answer host-1 (got '$answer')"; exit 1; }
done

run() { # name port -> queries/s
  dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/queries.txt" -l "$SECONDS_PER_RUN" -c 8 -q 500 -T 1 \
    >"$WORK/$1.dnsperf" 2>&1
  grep -E "Queries per second" "$WORK/$1.dnsperf" | awk '{print $4}'
}

echo "dnsperf: $SECONDS_PER_RUN s per run, $ROUNDS rounds, $(nproc) cores, $HOSTS hosts"
for round in $(seq "$ROUNDS"); do
  prism_qps="$(run prism $PRISM_DNS_PORT)"
  grep -E "Queries (completed|lost)|Average Latency" "$WORK/prism.dnsperf" | sed 's/^/  prism: /'
  nsd_qps="$(run nsd $NSD_PORT)"
  grep -E "Queries (completed|lost)|Average Latency" "$WORK/nsd.dnsperf" | sed 's/^/  nsd:   /'
  ratio="$(awk -v p="$prism_qps" -v n="$nsd_qps" 'BEGIN { printf "%.2f", p / n }')"
  echo "round $round: Prism $prism_qps q/s, NSD $nsd_qps q/s, Prism/NSD = $ratio"
done
