#!/usr/bin/env bash
# Side-by-side benchmark on this machine, in one run: the same publisher (an FLV replayed in
# real time with SEI wall-clock stamps, in a process of its own) and the same viewers (one
# skyrelay-loadtest process), first against nginx + nginx-rtmp (classic HLS, 1 s fragments)
# with one nginx proxy_cache edge per region, then against a Skyrelay network started with
# `skyrelay up` (two regions, viewers on the first edge of each), LL-HLS and classic HLS.
# After the viewers, a cold-miss burst: 256 clients request the newest segment (and, on
# another cold edge, the media playlist) at the same instant from an edge that has not
# fetched it. Prints a table with ratios; with --write-docs also appends it (with the
# command and the machine) to docs/benchmarks.md.
#
#   ./scripts/bench-compare.sh                     # 1000 viewers, 30 s each
#   VIEWERS=200 DURATION=20 ./scripts/bench-compare.sh --write-docs
#
# Environment: VIEWERS (1000, half per region), DURATION (30 s measured), WARMUP (6 s of
# publishing before viewers start), RAMP (5 s over which viewers start), BURST (256 clients),
# BASE_PORT (29300; uses BASE_PORT..+99 for nginx and BASE_PORT+100.. for `skyrelay up`, all
# on 127.0.0.1), VIDEO_KBPS (400) and SIZE (640x360) for the source (every viewer receives
# the whole stream: viewers × bitrate must fit through loopback on this machine),
# SKIP_BUILD=1 to use the release binaries already in target/.
# Skyrelay runs with `skyrelay up`'s defaults (333 ms parts, 2 s segments, every channel
# recorded to the data directory).
# Installs nginx, libnginx-mod-rtmp, ffmpeg and jq from Debian when missing. Everything it
# starts runs from a temporary directory and is stopped by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VIEWERS=${VIEWERS:-1000}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-6}
RAMP=${RAMP:-5}
BURST=${BURST:-256}
BASE_PORT=${BASE_PORT:-29300}
VIDEO_KBPS=${VIDEO_KBPS:-400}
SIZE=${SIZE:-640x360}
WRITE_DOCS=0
[ "${1:-}" = "--write-docs" ] && WRITE_DOCS=1
HALF=$((VIEWERS / 2))

NGX_RTMP=$((BASE_PORT + 35)); NGX_HTTP=$((BASE_PORT + 80))
NGX_EDGE_EU=$((BASE_PORT + 81)); NGX_EDGE_US=$((BASE_PORT + 82)); NGX_EDGE_COLD=$((BASE_PORT + 83))
SKY_BASE=$((BASE_PORT + 100)); SKY_RTMP=$((BASE_PORT + 36))
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

need=()
command -v nginx >/dev/null || need+=(nginx)
[ -f "$RTMP_MODULE" ] || need+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/skyrelay-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers (nobody) write and read the HLS files below it
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

SRC=$WORK/src.flv
echo "==> encoding the source once (10 s, ${SIZE} 30 fps, 1 s GOP, ${VIDEO_KBPS} kbit/s H.264 + 64 kbit/s AAC)"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=${SIZE}:rate=30" -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 10 -c:v libx264 -preset veryfast -g 30 -keyint_min 30 -b:v "${VIDEO_KBPS}k" -maxrate "${VIDEO_KBPS}k" \
  -bufsize "${VIDEO_KBPS}k" -pix_fmt yuv420p -c:a aac -b:a 64k -ar 48000 -f flv "$SRC"
STREAM_BPS=$(($(stat -c %s "$SRC") / 10)) # bytes per second of media (FLV payload)

wait_for() { # description, seconds, command...
  local what=$1 end=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "timed out waiting for $what" >&2; return 1; }
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# CPU ticks (user+system) of a process and its children.
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do ps -o pid= --ppid "$q" 2>/dev/null; done); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
# Peak resident memory (kB) of a process and its children.
peak_rss_kb() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do ps -o pid= --ppid "$q" 2>/dev/null; done); do
    [ -r "/proc/$p/status" ] || continue
    total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)

# start_publisher URL: the stamped FLV replay, in its own process, for the whole case.
start_publisher() {
  "$LOADTEST" --quiet --report "$WORK/publish-$CASE.json" --plot "$WORK/publish-$CASE.svg" publish \
    --url "$1" --file "$SRC" --duration $((WARMUP + DURATION + 60)) >"$WORK/publish-$CASE.txt" 2>&1 &
  PUB_PID=$!; PIDS+=("$PUB_PID")
}
stop_pid() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

# run_viewers MODE URL_EU URL_US METRICS_TOML SERVER_PID...: VIEWERS/2 viewers per region,
# then writes $CASE.full.json with the server's CPU and peak RSS.
run_viewers() {
  local mode=$1 url_eu=$2 url_us=$3 metrics=$4 u; shift 4
  # One request per edge first (the media playlist), so an edge's first fetch of the channel
  # (for Skyrelay: the window history sent on subscribe) is not counted as the viewers'.
  for u in "$url_eu" "$url_us"; do
    "$LOADTEST" --quiet --report "$WORK/prime.json" burst --target "${u%/live/*}" --reference "$u" \
      --object playlist --clients 1 >/dev/null
  done
  cat >"$WORK/$CASE.toml" <<EOF
duration_s = $DURATION
warmup_s = 0
ramp_up_s = $RAMP
[[viewers]]
name = "$CASE-eu"
url = "$url_eu"
count = $HALF
mode = "$mode"
region = "eu"
[[viewers]]
name = "$CASE-us"
url = "$url_us"
count = $HALF
mode = "$mode"
region = "us"
$metrics
EOF
  echo "==> $CASE: $VIEWERS $mode viewers (half per region) for ${DURATION}s"
  local before after
  before=$(cpu_ticks "$@")
  "$LOADTEST" --quiet --report "$WORK/$CASE.json" --plot "$WORK/$CASE.svg" scenario "$WORK/$CASE.toml" \
    | tee "$WORK/$CASE.txt"
  after=$(cpu_ticks "$@")
  jq --arg cpu "$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')" \
    --arg rss "$(peak_rss_kb "$@")" --argjson stream_bps "$STREAM_BPS" \
    '. + {server_cpu_s: ($cpu | tonumber), server_peak_rss_kb: ($rss | tonumber), stream_bps: $stream_bps}' \
    "$WORK/$CASE.json" >"$WORK/$CASE.full.json"
}

# burst NAME TARGET REFERENCE OBJECT
burst() {
  echo "==> $CASE: cold-miss burst of $BURST clients ($4) at $2"
  "$LOADTEST" --quiet --report "$WORK/$CASE-$1.json" burst --target "$2" --reference "$3" --object "$4" \
    --clients "$BURST" | tee "$WORK/$CASE-$1.txt"
}

# merge NAME: $CASE.full.json + bursts + upstream figures -> $CASE.result.json
merge() {
  local seg=$1 up_eu=$2 up_us=$3 req_eu=$4 req_us=$5
  jq --slurpfile seg "$WORK/$CASE-segment.json" --slurpfile pl "$WORK/$CASE-playlist.json" \
    --argjson seg_s "$seg" --argjson up_eu "$up_eu" --argjson up_us "$up_us" \
    --argjson req_eu "$req_eu" --argjson req_us "$req_us" \
    '. + {burst_segment: $seg[0], burst_playlist: $pl[0], segment_s: $seg_s,
          upstream: {eu: {bytes: $up_eu, requests: $req_eu}, us: {bytes: $up_us, requests: $req_us}}}' \
    "$WORK/$CASE.full.json" >"$WORK/$CASE.result.json"
}

# --- nginx-rtmp, with one proxy_cache edge per region and a cold one for the bursts ------
mkdir -p "$WORK/nginx/hls" "$WORK/nginx/logs" "$WORK/nginx/tmp"
edge_server() { # port, region, cache zone
  cat <<EOF
  server {
    listen 127.0.0.1:$1;
    proxy_set_header X-Edge $2;
    proxy_ignore_headers Cache-Control Expires; # the origin says no-cache; an edge cache caches anyway
    # Playlists: one refresh per second per edge; while it runs, others get the stale copy.
    location ~ \.m3u8\$ { proxy_pass http://127.0.0.1:$NGX_HTTP; proxy_cache $3; proxy_cache_valid 200 1s;
                         proxy_cache_lock on; proxy_cache_lock_timeout 5s;
                         proxy_cache_use_stale updating; proxy_cache_background_update on; }
    location / { proxy_pass http://127.0.0.1:$NGX_HTTP; proxy_cache $3; proxy_cache_valid 200 60s;
                 proxy_cache_lock on; proxy_cache_lock_timeout 5s; }
  }
EOF
}
cat >"$WORK/nginx/nginx.conf" <<EOF
load_module $RTMP_MODULE;
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections $(( $(ulimit -n) - 100 )); }
rtmp {
  server {
    listen 127.0.0.1:$NGX_RTMP;
    chunk_size 4096;
    application live {
      live on;
      hls on;
      hls_path $WORK/nginx/hls;
      hls_fragment 1s;
      hls_playlist_length 6s;
    }
  }
}
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
  proxy_cache_path $WORK/nginx/cache-eu keys_zone=eu:10m max_size=200m inactive=30s;
  proxy_cache_path $WORK/nginx/cache-us keys_zone=us:10m max_size=200m inactive=30s;
  proxy_cache_path $WORK/nginx/cache-cold keys_zone=cold:10m max_size=200m inactive=30s;
  log_format upstream '\$http_x_edge \$body_bytes_sent';
  server {
    listen 127.0.0.1:$NGX_HTTP;
    access_log $WORK/nginx/logs/origin.log upstream;
    location /live/ {
      alias $WORK/nginx/hls/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Cache-Control no-cache;
    }
  }
$(edge_server "$NGX_EDGE_EU" eu eu)
$(edge_server "$NGX_EDGE_US" us us)
$(edge_server "$NGX_EDGE_COLD" cold cold)
}
EOF
CASE=nginx-rtmp
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
wait_for "nginx" 10 port_open "$NGX_RTMP"
start_publisher "rtmp://127.0.0.1:$NGX_RTMP/live/bench0"
NGX_ORIGIN_URL="http://127.0.0.1:$NGX_HTTP/live/bench0.m3u8"
wait_for "nginx-rtmp's playlist" 30 curl -fsS "$NGX_ORIGIN_URL"
sleep "$WARMUP" # the publisher's warm-up: a few fragments in the window before viewers come
LOG=$WORK/nginx/logs/origin.log
touch "$LOG"
L0=$(wc -l <"$LOG")
run_viewers hls "http://127.0.0.1:$NGX_EDGE_EU/live/bench0.m3u8" "http://127.0.0.1:$NGX_EDGE_US/live/bench0.m3u8" \
  "" "$NGINX_PID"
L1=$(wc -l <"$LOG")
ngx_up() { sed -n "$((L0 + 1)),${L1}p" "$LOG" | awk -v e="$1" -v f="$2" '$1 == e { n++; b += $2 } END { print (f == "n" ? n + 0 : b + 0) }'; }
burst segment "http://127.0.0.1:$NGX_EDGE_COLD" "$NGX_ORIGIN_URL" segment
burst playlist "http://127.0.0.1:$NGX_EDGE_COLD" "$NGX_ORIGIN_URL" playlist
merge 1 "$(ngx_up eu b)" "$(ngx_up us b)" "$(ngx_up eu n)" "$(ngx_up us n)"
stop_pid "$PUB_PID"
stop_pid "$NGINX_PID"

# --- Skyrelay: `skyrelay up`, two regions ----------------------------------------------
UP_DIR=$WORK/up
start_up() {
  rm -f "$UP_DIR/up.json"
  RUST_LOG=warn "$SKYRELAY" up --data-dir "$UP_DIR" --port-base "$SKY_BASE" --rtmp-port "$SKY_RTMP" \
    >>"$WORK/up.log" 2>&1 &
  UP_PID=$!; PIDS+=("$UP_PID")
  wait_for "skyrelay up (up.json)" 60 test -s "$UP_DIR/up.json"
  UP=$UP_DIR/up.json
  PUBLISH=$(jq -r .demo.publish_url "$UP")
  ORIGIN_EU=$(jq -r '.regions[0].origin_http' "$UP")
  EDGE() { jq -r ".regions[$1].edges[$2]" "$UP"; }
  METRICS() { jq -r ".regions[$1].metrics[$(($2 + 1))]" "$UP"; }
  SKY_REF="$ORIGIN_EU/live/demo/master.m3u8"
}
sky_metrics() {
  cat <<EOF
[[metrics]]
name = "edge-eu-1"
url = "$(METRICS 0 0)"
region = "eu"
upstream_bytes = "skyrelay_edge_upstream_bytes_total"
counters = ["skyrelay_edge_upstream_objects_total"]
[[metrics]]
name = "edge-us-1"
url = "$(METRICS 1 0)"
region = "us"
upstream_bytes = "skyrelay_edge_upstream_bytes_total"
counters = ["skyrelay_edge_upstream_objects_total"]
EOF
}
counter() { # target counter
  jq -r --arg t "$1" --arg c "$2" '[.counters[] | select(.target == $t and .counter == $c) | .delta // 0] | add // 0' \
    "$WORK/$CASE.json"
}
sky_case() { # mode, with_bursts
  CASE=skyrelay-$1
  start_up
  start_publisher "$PUBLISH"
  wait_for "the origin's playlist" 30 curl -fsS "$SKY_REF"
  sleep "$WARMUP"
  run_viewers "$1" "$(EDGE 0 0)/live/demo/master.m3u8" "$(EDGE 1 0)/live/demo/master.m3u8" "$(sky_metrics)" "$UP_PID"
  # Cold edges: the second edge of each region has not carried the channel.
  burst segment "$(EDGE 0 1)" "$SKY_REF" segment
  burst playlist "$(EDGE 1 1)" "$SKY_REF" playlist
  local seg_s
  seg_s=$(curl -fsS "$ORIGIN_EU/live/demo/source/index.m3u8" 2>/dev/null | sed -n 's/^#EXT-X-TARGETDURATION://p' | head -1)
  merge "${seg_s:-2}" \
    "$(counter edge-eu-1 skyrelay_edge_upstream_bytes_total)" "$(counter edge-us-1 skyrelay_edge_upstream_bytes_total)" \
    "$(counter edge-eu-1 skyrelay_edge_upstream_objects_total)" "$(counter edge-us-1 skyrelay_edge_upstream_objects_total)"
  stop_pid "$PUB_PID"
  stop_pid "$UP_PID"
}
# A fresh network per case, so that CPU and peak RSS belong to that case alone.
sky_case ll-hls
sky_case hls

# --- table -----------------------------------------------------------------------------
TABLE=$WORK/table.md
jq -rs --argjson viewers "$VIEWERS" -f /dev/stdin "$WORK/nginx-rtmp.result.json" \
  "$WORK/skyrelay-ll-hls.result.json" "$WORK/skyrelay-hls.result.json" >"$TABLE" <<'JQ'
def g: .groups[0];
def reqs: (g.requests | to_entries | map(.value) | add) // 0;
def rps: if .server_cpu_s > 0 then (reqs / .server_cpu_s) else 0 end;
def r(a; b): if (a | type) == "number" and (b | type) == "number" and b > 0
  then ((a / b) * 100 | round / 100 | tostring) + "×" else "-" end;
def f(x): if (x | type) == "number" then (if x < 10 then (x * 100 | round / 100) else (x * 10 | round / 10) end | tostring) else "-" end;
def row(name; fn): [name] + (map(fn | f(.))) + [r(.[1] | fn; .[0] | fn)];
# Origin traffic per region, normalised per segment of media: requests, and bytes as copies of the stream.
def up_req: ((.upstream.eu.requests + .upstream.us.requests) / 2) / (.duration_s / .segment_s);
def up_copies: ((.upstream.eu.bytes + .upstream.us.bytes) / 2) / (.duration_s * .stream_bps);
def ttfb(b; q): if b.ok > 0 or b.ttfb_ms.count > 0 then b.ttfb_ms[q] else null end;
. as $all |
["| metric | nginx-rtmp + nginx edges (HLS) | Skyrelay `up` (LL-HLS) | Skyrelay `up` (HLS) | Skyrelay LL ÷ nginx |",
 "|---|---:|---:|---:|---:|",
 ($all | row("frame latency p50 (ms)"; g.latency_ms.p50)),
 ($all | row("frame latency p99 (ms)"; g.latency_ms.p99)),
 ($all | row("startup p50 (ms)"; g.startup_ms.p50)),
 ($all | row("startup p99 (ms)"; g.startup_ms.p99)),
 ($all | row("viewer requests per server CPU-second"; rps)),
 ($all | row("viewer requests per viewer-second (the request mix differs)"; reqs / $viewers / .duration_s)),
 ($all | row("server CPU-µs per viewer-second"; .server_cpu_s * 1e6 / $viewers / .duration_s)),
 ($all | row("server CPU (s)"; .server_cpu_s)),
 ($all | row("server peak RSS (MiB)"; (.server_peak_rss_kb / 1024))),
 ($all | row("server peak RSS per 1,000 viewers (MiB)"; (.server_peak_rss_kb / 1024 / $viewers * 1000))),
 ($all | row("origin→edge transfers per segment, per region (nginx: HTTP requests; Skyrelay: relay objects)"; up_req)),
 ($all | row("origin bytes per region ÷ one copy of the stream"; up_copies)),
 ($all | row("cold segment, \(.[0].burst_segment.clients) clients at once: TTFB p50 (ms)"; ttfb(.burst_segment; "p50"))),
 ($all | row("cold segment burst: TTFB p99 (ms)"; ttfb(.burst_segment; "p99"))),
 ($all | row("cold segment burst: TTFB max (ms)"; ttfb(.burst_segment; "max"))),
 ($all | row("cold segment burst: 2xx responses"; .burst_segment.ok)),
 ($all | row("cold playlist burst: TTFB p50 (ms)"; ttfb(.burst_playlist; "p50"))),
 ($all | row("cold playlist burst: TTFB p99 (ms)"; ttfb(.burst_playlist; "p99"))),
 ($all | row("cold playlist burst: 2xx responses"; .burst_playlist.ok)),
 ($all | row("origin fetch of the segment, 1 client: TTFB (ms)"; .burst_segment.reference_ttfb_ms)),
 ($all | row("stalls"; g.stalls)),
 ($all | row("errors"; (g.errors | to_entries | map(.value) | add) // 0)),
 ($all | row("viewers that got media"; g.started)),
 ($all | row("delivered Mbit/s"; (g.bytes * 8 / .duration_s / 1e6)))]
| map(if type == "array" then "| " + join(" | ") + " |" else . end) | .[]
JQ
echo
cat "$TABLE"
echo
echo "reports, plots and logs: $WORK"

if [ "$WRITE_DOCS" = 1 ]; then
  DOC=$ROOT/docs/benchmarks.md
  mkdir -p "$ROOT/docs/benchmarks"
  STAMP=$(date -u +%Y-%m-%dT%H:%MZ)
  cp "$WORK/skyrelay-ll-hls.svg" "$ROOT/docs/benchmarks/skyrelay-ll-hls-latency.svg"
  cp "$WORK/nginx-rtmp.svg" "$ROOT/docs/benchmarks/nginx-rtmp-latency.svg"
  {
    echo
    echo "## Side by side with nginx-rtmp, through edges ($STAMP)"
    echo
    echo "Command: \`VIEWERS=$VIEWERS DURATION=$DURATION WARMUP=$WARMUP RAMP=$RAMP BURST=$BURST VIDEO_KBPS=$VIDEO_KBPS SIZE=$SIZE ./scripts/bench-compare.sh --write-docs\`"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), load tester, publisher and servers on the same machine; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    cat "$TABLE"
    echo
    echo "Latency plots: [Skyrelay LL-HLS](benchmarks/skyrelay-ll-hls-latency.svg), [nginx-rtmp](benchmarks/nginx-rtmp-latency.svg)."
  } >>"$DOC"
  echo "appended to $DOC"
fi
