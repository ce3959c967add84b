#!/usr/bin/env bash
# Edge delivery benchmark (issue "relay and edge"), Skyrelay edge next to nginx in one run:
#   (1) frame applied at the origin -> its bytes at an HTTP client of the edge, p50/p99,
#       vs nginx proxying the same origin unbuffered;
#   (2) wrk -t2 -c256 on a cached ~340 KB segment and on a playlist: requests/s and requests
#       per server CPU-second, vs nginx serving the same bytes from files;
#   (3) a segment not cached yet: time to first byte of one request after a 2 s pause, of one
#       right behind it, and of 256 clients at once (then a part, then the segment cached),
#       vs nginx proxy_cache + proxy_cache_lock in front of the same origin; with the machine's
#       cost of touching memory that sat idle.
# The program is edge/benches/edge_delivery.rs (a bench target, harness = false). It prints a
# markdown table (medians over RUNS runs, ratios) and writes it to $OUT/edge-delivery.md
# together with the machine and the command.
#
#   ./scripts/bench-edge.sh
#   RUNS=5 WRK_SECONDS=15 ./scripts/bench-edge.sh
#
# Environment: RUNS (3), BASE_PORT (29500; uses BASE_PORT..+22 on 127.0.0.1), WRK_SECONDS (10),
# WRK_WARMUP_SECONDS (3: a discarded wrk on the same URL before each measured one),
# LATENCY_SECONDS (10), CLIENTS (256), OUT (target/bench-edge); ONLY=cold runs only (3) and prints
# its figures per run (RUST_LOG=skyrelay_common::relay=debug adds the relay timeline).
# ONLY=serve starts the origin, the warmed edge and nginx, prints their PIDs and URLs and keeps
# them up until stdin closes (for perf/strace by hand; run it in a terminal, not in the background).
# Installs nginx and wrk from Debian when missing. Everything it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export RUNS=${RUNS:-3} BASE_PORT=${BASE_PORT:-29500} WRK_SECONDS=${WRK_SECONDS:-10}
export WRK_WARMUP_SECONDS=${WRK_WARMUP_SECONDS:-3}
export LATENCY_SECONDS=${LATENCY_SECONDS:-10} CLIENTS=${CLIENTS:-256} OUT=${OUT:-$ROOT/target/bench-edge}

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Cargo names the binary it built (or found up to date) in its JSON messages.
BIN=$(cargo build --release --locked -q -p skyrelay-edge --bench edge_delivery --message-format=json \
  | grep -o '"executable":"[^"]*edge_delivery-[^"]*"' | tail -n1 | cut -d'"' -f4)
[ -x "$BIN" ] || { echo "bench binary not built" >&2; exit 1; }

mkdir -p "$OUT"
CMD="RUNS=$RUNS WRK_SECONDS=$WRK_SECONDS WRK_WARMUP_SECONDS=$WRK_WARMUP_SECONDS LATENCY_SECONDS=$LATENCY_SECONDS CLIENTS=$CLIENTS ./scripts/bench-edge.sh"
echo "==> running: $CMD"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
"$BIN" --bench
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NGINX=$(nginx -v 2>&1 | sed 's/.*nginx\///')
WRK=$( (wrk --version 2>&1 || true) | head -n1 | awk '{print $2}')
{
  echo
  echo "Command: \`$CMD\` ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) CPUs ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM," \
       "$(. /etc/os-release && echo "$PRETTY_NAME"), nginx $NGINX, wrk $WRK; wrk, clients and servers on one machine;" \
       "load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
} | tee -a "$OUT/edge-delivery.md"
echo "==> results in $OUT/edge-delivery.md"
