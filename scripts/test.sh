#!/usr/bin/env bash
# The one command that runs every Skyrelay test: installs what the tests need when it is
# missing (Debian/Ubuntu: ffmpeg, GStreamer with rtmp2sink, PostgreSQL, Chromium, Node.js;
# the web UI's npm packages), then runs the whole test suite.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p skyrelay-origin    # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
if ! command -v gst-launch-1.0 >/dev/null || ! gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 \
  || ! gst-inspect-1.0 avenc_aac >/dev/null 2>&1 || ! gst-inspect-1.0 x264enc >/dev/null 2>&1; then
  need+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
         gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)

if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing test dependencies: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The browser tests drive Debian's chromium through playwright-core (never `npx playwright install`).
if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "==> npm ci --prefix web"
  npm ci --prefix web --no-audit --no-fund
fi

# The recording tests run a real S3-compatible server on loopback (newer s3s-fs needs Rust 1.96).
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  echo "==> cargo install s3s-fs (S3-compatible server for the recording tests)"
  cargo install s3s-fs@0.14.1 --features binary --locked
fi

echo "==> cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast "$@"
