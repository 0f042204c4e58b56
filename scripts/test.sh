#!/usr/bin/env bash
# Runs every test qrlogin has: formatting, lints, Rust unit, store contract
# and API tests, a schemathesis run against the release server's OpenAPI
# document, then Playwright in Debian's Chromium against the release build.
# Installs whatever is missing first. Exits non-zero on any failure.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$REPO_ROOT/scripts/services.sh"
cd "$REPO_ROOT"
ensure_build_tools
ensure_browser
ensure_redis
ensure_postgres
ensure_nginx

# A fresh clone gains nothing from incremental caches; they only cost disk.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi
check_free_disk 6

log="$(mktemp)"
# Redis and PostgreSQL for the store contracts and the multi-instance
# tests, on unix sockets in a throwaway folder; stopped however this ends.
services="$(mktemp -d /tmp/qrlogin-services.XXXXXX)"
trap 'stop_test_services "$services"; rm -rf "$services" "$log"' EXIT
say "starting Redis and PostgreSQL under $services"
start_test_services "$services"
# Tests that need them fail (rather than skip) without them.
export QRLOGIN_REQUIRE_SERVICES=1

say "cargo fmt --check"
cargo fmt --all -- --check

say "clippy, per package"
cargo clippy -p server --all-targets -- -D warnings
cargo clippy -p app --features ssr --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p bench --all-targets -- -D warnings

say "Rust tests"
cargo test -p server 2>&1 | tee -a "$log"
cargo test -p app --features ssr 2>&1 | tee -a "$log"
cargo test -p bench 2>&1 | tee -a "$log"

say "release build (site + server + benchmark)"
release_build_with_bench

say "API contract: schemathesis against the release server's OpenAPI document"
scripts/schemathesis.sh target/release/qrlogin 2>&1 | tee -a "$log"

say "login bundle budget (WASM + JS ≤ 145 kB brotli)"
target/release/qrlogin-bench budget

say "browser tests (Playwright, Debian chromium)"
(cd end2end && npx playwright test) 2>&1 | tee -a "$log"

say "benchmark smoke run (small numbers; checks every figure is produced)"
QRLOGIN_BENCH_REDIS="$QRLOGIN_TEST_REDIS" QRLOGIN_BENCH_POSTGRES="$QRLOGIN_TEST_POSTGRES" \
  target/release/qrlogin-bench run --quick --out "$(mktemp -d)"

say "soak with faults, 60 s (two instances behind nginx; an instance, Redis and PostgreSQL killed and restarted, each twice)"
target/release/qrlogin-bench soak --duration 60 --out "$(mktemp -d)" --no-markdown

# One closing line for all runners together.
passed=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
e2e=$(grep -oE '^ +[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
echo "all: $((passed + e2e)) passed, 0 failed"
