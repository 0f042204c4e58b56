#!/usr/bin/env bash
# The benchmark: builds the release site and server, then measures qrlogin
# against a plain axum server in the same run (see BENCHMARKS.md).
# Writes BENCHMARKS.md's table, docs/bench/results.json and latency.svg.
# Extra arguments go to `qrlogin-bench run` (e.g. --quick, --waiters 1000).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_build_tools
ensure_browser

say "release build (site + server + benchmark)"
release_build_with_bench

say "benchmark"
target/release/qrlogin-bench run "$@"
