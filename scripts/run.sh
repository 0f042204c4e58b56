#!/usr/bin/env bash
# Builds qrlogin (release) and serves it on the embedded defaults:
# http://127.0.0.1:3000/login. Extra arguments go to `qrlogin serve`, e.g.
#   scripts/run.sh --addr 0.0.0.0:3000 --public-url http://192.168.1.20:3000
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_build_tools
say "building the release site and server"
release_build_with_bench
exec target/release/qrlogin serve --demo "$@"
