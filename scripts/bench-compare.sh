#!/usr/bin/env bash
# Side-by-side benchmark on this machine, in one run: the same publisher (an FLV replayed in
# real time with SEI wall-clock stamps) and the same number of viewers, first against
# nginx + nginx-rtmp (classic HLS, 1 s fragments, one worker), then against a Skyrelay
# origin (LL-HLS), measured by skyrelay-loadtest. Prints a table with ratios; with
# --write-docs also appends it (with the command and the machine) to docs/benchmarks.md.
#
#   ./scripts/bench-compare.sh                     # 1000 viewers, 30 s each
#   VIEWERS=200 DURATION=20 ./scripts/bench-compare.sh --write-docs
#   NGINX_EDGE=1 ./scripts/bench-compare.sh        # viewers go through an nginx proxy_cache edge
#
# Environment: VIEWERS (1000), DURATION (30 s measured), WARMUP (6 s of publishing before
# viewers start), RAMP (5 s over which viewers start), BASE_PORT (29300; uses BASE_PORT..+99
# on 127.0.0.1), PART_MS (200) and SEGMENT_MS (1000) for Skyrelay, VIDEO_KBPS (400) and SIZE
# (640x360) for the source (every viewer receives the whole stream: viewers × bitrate must fit
# through loopback on this machine), SKIP_BUILD=1 to use the
# release binaries already in target/.
# Installs nginx, libnginx-mod-rtmp, ffmpeg and jq from Debian when missing. Everything it
# starts runs from a temporary directory and is stopped by PID at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VIEWERS=${VIEWERS:-1000}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-6}
RAMP=${RAMP:-5}
BASE_PORT=${BASE_PORT:-29300}
PART_MS=${PART_MS:-200}
SEGMENT_MS=${SEGMENT_MS:-1000}
VIDEO_KBPS=${VIDEO_KBPS:-400}
SIZE=${SIZE:-640x360}
WRITE_DOCS=0
[ "${1:-}" = "--write-docs" ] && WRITE_DOCS=1

NGX_RTMP=$((BASE_PORT + 35)); NGX_HTTP=$((BASE_PORT + 80)); NGX_EDGE_HTTP=$((BASE_PORT + 81))
SKY_RTMP=$((BASE_PORT + 36)); SKY_HTTP=$((BASE_PORT + 82)); SKY_ADMIN=$((BASE_PORT + 90))
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

need=()
command -v nginx >/dev/null || need+=(nginx)
[ -f "$RTMP_MODULE" ] || need+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v jq >/dev/null || need+=(jq)
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

wait_port() { # host:port, seconds
  local end=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; do
    [ $SECONDS -lt $end ] || { echo "nothing listens on $1" >&2; return 1; }
    sleep 0.2
  done
}

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

# run_case NAME MODE PLAYLIST_URL PUBLISH_URL PID...
run_case() {
  local name=$1 mode=$2 url=$3 pub=$4; shift 4
  cat >"$WORK/$name.toml" <<EOF
duration_s = $DURATION
warmup_s = $WARMUP
ramp_up_s = $RAMP
[[publishers]]
url = "$pub"
file = "$SRC"
[[viewers]]
name = "$name"
url = "$url"
count = $VIEWERS
mode = "$mode"
EOF
  echo "==> $name: $VIEWERS $mode viewers for ${DURATION}s"
  local before after
  before=$(cpu_ticks "$@")
  "$LOADTEST" --quiet --report "$WORK/$name.json" --plot "$WORK/$name.svg" scenario "$WORK/$name.toml" \
    | tee "$WORK/$name.txt"
  after=$(cpu_ticks "$@")
  jq --arg cpu "$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')" \
    --arg rss "$(peak_rss_kb "$@")" \
    '. + {server_cpu_s: ($cpu | tonumber), server_peak_rss_kb: ($rss | tonumber)}' \
    "$WORK/$name.json" >"$WORK/$name.full.json"
}

# --- nginx-rtmp ------------------------------------------------------------------------
mkdir -p "$WORK/nginx/hls" "$WORK/nginx/logs" "$WORK/nginx/cache"
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
  proxy_cache_path $WORK/nginx/cache keys_zone=hls:10m max_size=200m inactive=30s;
  server {
    listen 127.0.0.1:$NGX_HTTP;
    location /live/ {
      alias $WORK/nginx/hls/;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Cache-Control no-cache;
    }
  }
  server {
    listen 127.0.0.1:$NGX_EDGE_HTTP;
    location ~ \.m3u8\$ { proxy_pass http://127.0.0.1:$NGX_HTTP; proxy_cache hls; proxy_cache_valid 200 1s;
                         proxy_cache_lock on; proxy_cache_lock_timeout 5s; }
    location / { proxy_pass http://127.0.0.1:$NGX_HTTP; proxy_cache hls; proxy_cache_valid 200 60s;
                 proxy_cache_lock on; proxy_cache_lock_timeout 5s; }
  }
}
EOF
mkdir -p "$WORK/nginx/tmp"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
NGINX_PID=$!
wait_port "127.0.0.1:$NGX_RTMP" 10
NGX_URL="http://127.0.0.1:$NGX_HTTP/live/bench0.m3u8"
[ "${NGINX_EDGE:-0}" = 1 ] && NGX_URL="http://127.0.0.1:$NGX_EDGE_HTTP/live/bench0.m3u8"
run_case nginx-rtmp hls "$NGX_URL" "rtmp://127.0.0.1:$NGX_RTMP/live/bench0" "$NGINX_PID"
kill "$NGINX_PID"; while kill -0 "$NGINX_PID" 2>/dev/null; do sleep 0.1; done

# --- Skyrelay origin -------------------------------------------------------------------
KEY=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cat >"$WORK/origin.toml" <<EOF
node_name = "bench-origin"
region = "local"
drain_seconds = 1
[rtmp]
listen = "127.0.0.1:$SKY_RTMP"
[http]
listen = "127.0.0.1:$SKY_HTTP"
max_connections = 60000
[admin]
listen = "127.0.0.1:$SKY_ADMIN"
[packager]
part_target_ms = $PART_MS
segment_target_ms = $SEGMENT_MS
[[keys]]
key = "$KEY"
channel = "bench0"
EOF
start_origin() {
  RUST_LOG=warn "$SKYRELAY" origin --config "$WORK/origin.toml" >>"$WORK/origin.log" 2>&1 &
  PIDS+=($!)
  SKY_PID=$!
  wait_port "127.0.0.1:$SKY_RTMP" 10
  wait_port "127.0.0.1:$SKY_HTTP" 10
}
stop_origin() { kill "$SKY_PID"; while kill -0 "$SKY_PID" 2>/dev/null; do sleep 0.1; done; }
SKY_URL="http://127.0.0.1:$SKY_HTTP/live/bench0/master.m3u8"
# A fresh origin per case, so that CPU and peak RSS belong to that case alone.
start_origin
run_case skyrelay-ll-hls ll-hls "$SKY_URL" "rtmp://127.0.0.1:$SKY_RTMP/live/$KEY" "$SKY_PID"
stop_origin
start_origin
run_case skyrelay-hls hls "$SKY_URL" "rtmp://127.0.0.1:$SKY_RTMP/live/$KEY" "$SKY_PID"
stop_origin

# --- table -----------------------------------------------------------------------------
TABLE=$WORK/table.md
NGX_LABEL="nginx-rtmp (HLS)"
[ "${NGINX_EDGE:-0}" = 1 ] && NGX_LABEL="nginx-rtmp via nginx proxy_cache edge (HLS)"
jq -rs --argjson viewers "$VIEWERS" --arg ngx "$NGX_LABEL" -f /dev/stdin "$WORK/nginx-rtmp.full.json" \
  "$WORK/skyrelay-ll-hls.full.json" "$WORK/skyrelay-hls.full.json" >"$TABLE" <<'JQ'
def g: .groups[0];
def reqs: (g.requests | to_entries | map(.value) | add) // 0;
def rps: if .server_cpu_s > 0 then (reqs / .server_cpu_s) else 0 end;
def r(a; b): if b > 0 then ((a / b) * 100 | round / 100 | tostring) + "×" else "-" end;
def f(x): (x * 10 | round / 10 | tostring);
def row(name; fn): [name] + (map(fn | f(.))) + [r(.[1] | fn; .[0] | fn)];
. as $all |
["| metric | " + $ngx + " | Skyrelay origin (LL-HLS) | Skyrelay origin (HLS) | Skyrelay LL ÷ nginx |",
 "|---|---:|---:|---:|---:|",
 ($all | row("frame latency p50 (ms)"; g.latency_ms.p50)),
 ($all | row("frame latency p99 (ms)"; g.latency_ms.p99)),
 ($all | row("startup p50 (ms)"; g.startup_ms.p50)),
 ($all | row("startup p99 (ms)"; g.startup_ms.p99)),
 ($all | row("viewer requests per server CPU-second"; rps)),
 ($all | row("server CPU (s)"; .server_cpu_s)),
 ($all | row("server peak RSS (MiB)"; (.server_peak_rss_kb / 1024))),
 ($all | row("server peak RSS per 1,000 viewers (MiB)"; (.server_peak_rss_kb / 1024 / $viewers * 1000))),
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
    echo "## Side by side with nginx-rtmp ($STAMP)"
    echo
    echo "Command: \`VIEWERS=$VIEWERS DURATION=$DURATION WARMUP=$WARMUP RAMP=$RAMP PART_MS=$PART_MS SEGMENT_MS=$SEGMENT_MS VIDEO_KBPS=$VIDEO_KBPS SIZE=$SIZE ./scripts/bench-compare.sh --write-docs\`"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), load tester and servers on the same machine."
    echo
    cat "$TABLE"
    echo
    echo "Latency plots: [Skyrelay LL-HLS](benchmarks/skyrelay-ll-hls-latency.svg), [nginx-rtmp](benchmarks/nginx-rtmp-latency.svg)."
  } >>"$DOC"
  echo "appended to $DOC"
fi
