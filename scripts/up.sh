#!/usr/bin/env bash
# The one command that runs Skyrelay on this machine: a control plane and, per region, an
# origin and two edges on 127.0.0.1 (see `skyrelay up --help`). Extra arguments go to
# `skyrelay up`, e.g. ./scripts/up.sh --demo --regions eu,us,ap
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f web/node_modules/hls.js/dist/hls.min.js ]; then
  if command -v npm >/dev/null; then
    echo "==> installing the watch page's player (npm ci --prefix web)"
    npm ci --prefix web --no-audit --no-fund >/dev/null
  else
    echo "note: npm is missing, so the browser watch page has no player; HLS URLs still play in ffplay/VLC" >&2
  fi
fi
exec cargo run --release --locked -- up "$@"
