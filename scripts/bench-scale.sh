#!/usr/bin/env bash
# Viewer scale on this machine: VIEWERS LL-HLS viewers (default 10,000) in ONE load-tester
# process against ONE Skyrelay edge, fed over the QUIC relay by an origin, with the publisher
# in a process of its own. Measures the viewers' frame latency, startup, stalls and errors,
# and the CPU time and peak RSS of every process (load tester, edge, origin, publisher).
#
#   ./scripts/bench-scale.sh                          # 10,000 viewers, HTTP/2, 30 s
#   VIEWERS=5000 HTTP2=0 ./scripts/bench-scale.sh     # HTTP/1.1 keep-alive pool instead
#   ./scripts/bench-scale.sh --write-docs             # also appends the table to docs/benchmarks.md
#
# Environment: VIEWERS (10000), DURATION (30 s measured after the ramp), RAMP (20 s over which
# viewers start), HTTP2 (1: h2c prior knowledge to the edge, PER_CONNECTION viewers per
# connection, default 100 (an LL-HLS viewer holds at most 2 streams; the edge allows 256);
# 0: HTTP/1.1 keep-alive pool, 2 connections per viewer), PART_MS (333) and SEGMENT_MS (2000)
# for the origin's packager, VIDEO_KBPS (48), AUDIO_KBPS (16) and SIZE (160x90) for the source
# (every viewer receives the whole stream: 10,000 × 64 kbit/s is 640 Mbit/s through loopback),
# EDGE_THREADS (0: one per CPU; the edge's `http.delivery.threads`),
# BASE_PORT (29500; uses BASE_PORT..+20 on 127.0.0.1), SKIP_BUILD=1 to use the release binaries
# in target/. Everything it starts runs from a temporary directory and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VIEWERS=${VIEWERS:-10000}
DURATION=${DURATION:-30}
RAMP=${RAMP:-20}
HTTP2=${HTTP2:-1}
PER_CONNECTION=${PER_CONNECTION:-100}
PART_MS=${PART_MS:-333}
SEGMENT_MS=${SEGMENT_MS:-2000}
VIDEO_KBPS=${VIDEO_KBPS:-48}
AUDIO_KBPS=${AUDIO_KBPS:-16}
SIZE=${SIZE:-160x90}
BASE_PORT=${BASE_PORT:-29500}
WRITE_DOCS=0
[ "${1:-}" = "--write-docs" ] && WRITE_DOCS=1

RTMP=$((BASE_PORT + 1)); ORIGIN_HTTP=$((BASE_PORT + 2)); ORIGIN_ADMIN=$((BASE_PORT + 3))
RELAY=$((BASE_PORT + 4)); EDGE_HTTP=$((BASE_PORT + 5)); EDGE_ADMIN=$((BASE_PORT + 6))

command -v ffmpeg >/dev/null && command -v jq >/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg jq >/dev/null
}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/skyrelay-scale.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
}
trap cleanup EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "==> building (release)"
  cargo build --release --locked -q -p skyrelay-loadtest --bin skyrelay-loadtest
  cargo build --release --locked -q --bin skyrelay
fi
LOADTEST=$ROOT/target/release/skyrelay-loadtest
SKYRELAY=$ROOT/target/release/skyrelay

wait_for() { # description, seconds, command...
  local what=$1 end=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "timed out waiting for $what" >&2; return 1; }
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)

SRC=$WORK/src.flv
echo "==> encoding the source (10 s, ${SIZE} 30 fps, 1 s GOP, ${VIDEO_KBPS} kbit/s H.264 + ${AUDIO_KBPS} kbit/s AAC)"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=${SIZE}:rate=30" -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 10 -c:v libx264 -preset veryfast -g 30 -keyint_min 30 -b:v "${VIDEO_KBPS}k" -maxrate "${VIDEO_KBPS}k" \
  -bufsize "${VIDEO_KBPS}k" -pix_fmt yuv420p -c:a aac -b:a "${AUDIO_KBPS}k" -ar 48000 -f flv "$SRC"

echo "==> cluster CA and node certificates"
"$SKYRELAY" cluster-ca init --dir "$WORK/ca" >/dev/null
"$SKYRELAY" cluster-ca issue --ca "$WORK/ca" --name scale-origin --out "$WORK/origin-cert" --san 127.0.0.1 >/dev/null
"$SKYRELAY" cluster-ca issue --ca "$WORK/ca" --name scale-edge --out "$WORK/edge-cert" --san 127.0.0.1 >/dev/null

KEY=scale-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cat >"$WORK/origin.toml" <<EOF
node_name = "scale-origin"
region = "local"
drain_seconds = 1
[rtmp]
listen = "127.0.0.1:$RTMP"
[http]
listen = "127.0.0.1:$ORIGIN_HTTP"
[admin]
listen = "127.0.0.1:$ORIGIN_ADMIN"
[packager]
part_target_ms = $PART_MS
segment_target_ms = $SEGMENT_MS
[relay]
listen = "127.0.0.1:$RELAY"
cert_dir = "$WORK/origin-cert"
[[keys]]
key = "$KEY"
channel = "scale"
EOF
cat >"$WORK/edge.toml" <<EOF
node_name = "scale-edge"
region = "local"
cert_dir = "$WORK/edge-cert"
drain_seconds = 1
[http]
listen = "127.0.0.1:$EDGE_HTTP"
[http.delivery]
max_connections = 30000
threads = ${EDGE_THREADS:-0}
[admin]
listen = "127.0.0.1:$EDGE_ADMIN"
[upstream]
addr = "127.0.0.1:$RELAY"
server_name = "scale-origin"
EOF

RUST_LOG=warn "$SKYRELAY" origin --config "$WORK/origin.toml" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!; PIDS+=("$ORIGIN_PID")
wait_for "the origin" 20 port_open "$ORIGIN_HTTP"
RUST_LOG=warn "$SKYRELAY" edge --config "$WORK/edge.toml" >"$WORK/edge.log" 2>&1 &
EDGE_PID=$!; PIDS+=("$EDGE_PID")
wait_for "the edge" 20 port_open "$EDGE_HTTP"

TOTAL=$((RAMP + DURATION + 30))
echo "==> publisher (own process) for up to ${TOTAL}s"
"$LOADTEST" --quiet --report "$WORK/publish.json" --plot "$WORK/publish.svg" publish \
  --url "rtmp://127.0.0.1:$RTMP/live/$KEY" --file "$SRC" --duration "$TOTAL" >"$WORK/publish.txt" 2>&1 &
PUB_PID=$!; PIDS+=("$PUB_PID")
URL="http://127.0.0.1:$EDGE_HTTP/live/scale/master.m3u8"
wait_for "the stream at the origin" 30 curl -fsS "http://127.0.0.1:$ORIGIN_HTTP/live/scale/master.m3u8"
# Viewers join a running stream: its first segment complete. (Joining while the first segment is
# still being written, a viewer waits for it: up to SEGMENT_MS, which would be counted as its
# startup.)
has_segment() { curl -fsS "http://127.0.0.1:$ORIGIN_HTTP/live/scale/source/index.m3u8" | grep -q '^#EXTINF'; }
wait_for "a complete segment at the origin" 30 has_segment

H2=false; [ "$HTTP2" = 1 ] && H2=true
cat >"$WORK/viewers.toml" <<EOF
duration_s = $DURATION
warmup_s = 0
ramp_up_s = $RAMP
http2 = $H2
http2_viewers_per_connection = $PER_CONNECTION
[[viewers]]
name = "ll-hls"
url = "$URL"
count = $VIEWERS
mode = "ll-hls"
[[metrics]]
name = "edge"
url = "http://127.0.0.1:$EDGE_ADMIN/metrics"
upstream_bytes = "skyrelay_edge_upstream_bytes_total"
counters = ["skyrelay_edge_upstream_objects_total"]
EOF

echo "==> $VIEWERS LL-HLS viewers (HTTP/2: $H2), ramp ${RAMP}s, measured ${DURATION}s"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
e0=$(ticks "$EDGE_PID"); o0=$(ticks "$ORIGIN_PID"); p0=$(ticks "$PUB_PID")
/usr/bin/time -f '%e %U %S %M' -o "$WORK/tester.time" \
  "$LOADTEST" --quiet --report "$WORK/viewers.json" --plot "$WORK/viewers.svg" scenario "$WORK/viewers.toml" \
  | tee "$WORK/viewers.txt"
e1=$(ticks "$EDGE_PID"); o1=$(ticks "$ORIGIN_PID"); p1=$(ticks "$PUB_PID")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
E_RSS=$(hwm_kb "$EDGE_PID"); O_RSS=$(hwm_kb "$ORIGIN_PID"); P_RSS=$(hwm_kb "$PUB_PID")
# The publisher writes its report (with its largest send lag) when it stops.
kill -INT "$PUB_PID"
wait_for "the publisher's report" 20 test -s "$WORK/publish.json"
read -r T_WALL T_USER T_SYS T_RSS <"$WORK/tester.time"
cpu() { awk -v a="$1" -v b="$2" -v t="$TICKS" 'BEGIN { printf "%.1f", (b - a) / t }'; }

jq -n --slurpfile r "$WORK/viewers.json" \
  --arg viewers "$VIEWERS" --arg h2 "$H2" --arg per "$PER_CONNECTION" \
  --arg t_wall "$T_WALL" --arg t_cpu "$(awk -v u="$T_USER" -v s="$T_SYS" 'BEGIN { printf "%.1f", u + s }')" \
  --arg t_rss "$T_RSS" --arg e_cpu "$(cpu "$e0" "$e1")" --arg e_rss "$E_RSS" \
  --arg o_cpu "$(cpu "$o0" "$o1")" --arg o_rss "$O_RSS" \
  --arg p_cpu "$(cpu "$p0" "$p1")" --arg p_rss "$P_RSS" \
  '{viewers: ($viewers | tonumber), http2: ($h2 == "true"), per_connection: ($per | tonumber),
    tester: {wall_s: ($t_wall | tonumber), cpu_s: ($t_cpu | tonumber), peak_rss_kb: ($t_rss | tonumber)},
    edge: {cpu_s: ($e_cpu | tonumber), peak_rss_kb: ($e_rss | tonumber)},
    origin: {cpu_s: ($o_cpu | tonumber), peak_rss_kb: ($o_rss | tonumber)},
    publisher: {cpu_s: ($p_cpu | tonumber), peak_rss_kb: ($p_rss | tonumber)},
    report: $r[0]}' >"$WORK/scale.json"

TABLE=$WORK/table.md
jq -r '
def g: .report.groups[0];
def mib(k): (k / 1024 * 10 | round / 10 | tostring) + " MiB";
def f(x): (x * 10 | round / 10 | tostring);
"| quantity | value |", "|---|---:|",
"| viewers (LL-HLS, one process) | \(.viewers) |",
"| transport | \(if .http2 then "HTTP/2 (h2c), \(.per_connection) viewers per connection" else "HTTP/1.1 keep-alive pool" end) |",
"| viewers that got media | \(g.started) |",
"| frame latency p50 / p90 / p99 (ms) | \(f(g.latency_ms.p50)) / \(f(g.latency_ms.p90)) / \(f(g.latency_ms.p99)) |",
"| startup p50 / p99 (ms) | \(f(g.startup_ms.p50)) / \(f(g.startup_ms.p99)) |",
"| stalls | \(g.stalls) |",
"| errors | \((g.errors | to_entries | map("\(.key) \(.value)") | join(", ")) // "0" | if . == "" then "0" else . end) |",
"| requests (all kinds) | \((g.requests | to_entries | map(.value) | add) // 0) |",
"| delivered (Mbit/s) | \(f(g.bytes * 8 / .report.duration_s / 1e6)) |",
"| edge upstream bytes ÷ delivered bytes | \(if (.report.offload | length) > 0 then (.report.offload[0].upstream_bytes / (.report.offload[0].viewer_bytes + 1) * 1e4 | round / 1e4 | tostring) else "-" end) |",
"| load tester CPU (s) / wall (s) | \(f(.tester.cpu_s)) / \(f(.tester.wall_s)) |",
"| load tester peak RSS | \(mib(.tester.peak_rss_kb)) |",
"| edge CPU (s) | \(f(.edge.cpu_s)) |",
"| edge peak RSS | \(mib(.edge.peak_rss_kb)) |",
"| origin CPU (s) / peak RSS | \(f(.origin.cpu_s)) / \(mib(.origin.peak_rss_kb)) |",
"| publisher CPU (s) / peak RSS / max send lag | \(f(.publisher.cpu_s)) / \(mib(.publisher.peak_rss_kb)) / see publish.json |"
' "$WORK/scale.json" >"$TABLE"
LAG=$(jq -r '.publishers.max_lag_ms' "$WORK/publish.json" 2>/dev/null || echo "-")
sed -i "s|see publish.json|${LAG} ms|" "$TABLE"
echo
cat "$TABLE"
echo "load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
echo "reports and logs: $WORK"

if [ "$WRITE_DOCS" = 1 ]; then
  DOC=$ROOT/docs/benchmarks.md
  {
    echo
    echo "### $VIEWERS LL-HLS viewers on one edge ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Command: \`VIEWERS=$VIEWERS DURATION=$DURATION RAMP=$RAMP HTTP2=$HTTP2 PER_CONNECTION=$PER_CONNECTION PART_MS=$PART_MS SEGMENT_MS=$SEGMENT_MS VIDEO_KBPS=$VIDEO_KBPS AUDIO_KBPS=$AUDIO_KBPS SIZE=$SIZE ./scripts/bench-scale.sh --write-docs\`"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"); load tester, publisher, edge and origin on the same machine; load average before / after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    cat "$TABLE"
  } >>"$DOC"
  echo "appended to $DOC"
fi
