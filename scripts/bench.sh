#!/usr/bin/env bash
# The benchmark: builds the release site and server, then measures qrlogin
# against a plain axum server in the same run (see BENCHMARKS.md).
# Writes BENCHMARKS.md's table, docs/bench/results.json and latency.svg.
# Starts its own Redis and PostgreSQL (unix sockets, a temporary folder) for
# the two-instance part, and stops them.
# Extra arguments go to `qrlogin-bench run` (e.g. --quick, --waiters 1000).
#
# scripts/bench.sh --soak [ARGS]: only the soak with faults (two instances
# behind nginx on PostgreSQL + Redis of its own, 10 minutes by default;
# `--duration 60` for the short one); writes `soak` into
# docs/bench/results.json and the "## Soak" section of BENCHMARKS.md, and
# fails when an invariant was violated. ARGS go to `qrlogin-bench soak`.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$REPO_ROOT/scripts/services.sh"
cd "$REPO_ROOT"
ensure_build_tools

if [[ "${1:-}" == --soak ]]; then
  shift
  ensure_redis
  ensure_postgres
  ensure_nginx
  say "release build (site + server + benchmark)"
  release_build_with_bench
  say "soak with faults"
  exec target/release/qrlogin-bench soak "$@"
fi

ensure_browser
ensure_redis
ensure_postgres

say "release build (site + server + benchmark)"
release_build_with_bench

# The two-instance part's PostgreSQL and Redis, in a throwaway folder.
services="$(mktemp -d /tmp/qrlogin-bench-services.XXXXXX)"
trap 'stop_test_services "$services"; rm -rf "$services"' EXIT
start_test_services "$services"
export QRLOGIN_BENCH_REDIS="$QRLOGIN_TEST_REDIS" QRLOGIN_BENCH_POSTGRES="$QRLOGIN_TEST_POSTGRES"

say "benchmark"
target/release/qrlogin-bench run "$@"
