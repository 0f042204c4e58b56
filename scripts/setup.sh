# Installs what building and testing qrlogin needs, skipping what is there.
# Sourced by scripts/run.sh, scripts/test.sh and scripts/cluster.sh; safe to
# run again.
#   ensure_build_tools   wasm32 target, cargo-leptos, wasm-bindgen-cli, npm packages (wasm-opt)
#   ensure_browser       Debian's chromium for the Playwright tests
#   ensure_redis         Debian's redis-server and redis-cli (store tests, cluster.sh)
#   ensure_postgres      PostgreSQL 15 (store tests, cluster.sh)
#   ensure_nginx         nginx-light, the load balancer of cluster.sh

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# cargo-leptos 0.3.11 needs a newer rustc than this machine's stable.
CARGO_LEPTOS_VERSION="0.3.10"
export PATH="$REPO_ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Playwright must use Debian's Chromium; its own download cannot work here.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Debian keeps PostgreSQL's server binaries (initdb, pg_ctl, postgres) off PATH.
PG_BIN="${QRLOGIN_PG_BIN:-/usr/lib/postgresql/15/bin}"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

# Warns (does not fail) when the disk looks too small for a clean build.
check_free_disk() {
  local need_gb="$1" free_gb
  free_gb=$(df -Pk "$REPO_ROOT" | awk 'NR==2 { print int($4 / 1048576) }')
  if [ "$free_gb" -lt "$need_gb" ]; then
    say "warning: ${free_gb} GB free under $REPO_ROOT; a clean build needs about ${need_gb} GB"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_cargo_leptos() {
  if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes, once)"
    # no_downloads: take wasm-bindgen and wasm-opt from PATH instead of GitHub.
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
}

ensure_wasm_bindgen() {
  local want
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$REPO_ROOT/Cargo.lock")"
  if [ -z "$want" ]; then
    echo "cannot find the wasm-bindgen version in Cargo.lock" >&2
    return 1
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $want" ]; then
    say "installing wasm-bindgen-cli $want (the version in Cargo.lock)"
    # Not --locked: one of its locked dependencies is not in the index here.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_npm_packages() {
  local lock="$REPO_ROOT/end2end/package-lock.json"
  local stamp="$REPO_ROOT/end2end/node_modules/.qrlogin-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
    say "installing end2end npm packages (Playwright, jsQR, binaryen's wasm-opt)"
    (cd "$REPO_ROOT/end2end" && npm ci --no-audit --no-fund)
    cp "$lock" "$stamp"
  fi
}

ensure_build_tools() {
  ensure_wasm_target
  ensure_npm_packages
  ensure_wasm_bindgen
  ensure_cargo_leptos
}

# env inside as_root: sudo would drop DEBIAN_FRONTEND from the environment.
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    apt_install chromium
  fi
  # A Chinese font, so that the zh-CN pages' screenshots show characters
  # rather than boxes (phones have one; a bare Debian does not).
  if [ ! -d /usr/share/fonts/truetype/wqy ]; then
    say "installing Debian's fonts-wqy-zenhei"
    apt_install fonts-wqy-zenhei
  fi
}

ensure_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    say "installing Debian's redis-server and redis-tools"
    apt_install redis-server redis-tools
  fi
}

ensure_postgres() {
  if [ ! -x "$PG_BIN/initdb" ]; then
    say "installing Debian's postgresql-15"
    apt_install postgresql-15
  fi
}

ensure_nginx() {
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    say "installing Debian's nginx-light"
    apt_install nginx-light
  fi
  # A non-root PATH often lacks /usr/sbin.
  case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac
}

# The release site and server, and the benchmark binary in the same cargo
# run: built separately, the benchmark's different feature set made cargo
# compile ~90 shared crates (leptos, axum, tokio, ...) a second time. Every
# script that needs a release build (run, test, bench, cluster) calls this
# one, so running the tests and then the app builds once.
release_build_with_bench() {
  # --split: functions marked #[lazy] (the camera's QR decoder) become
  # WASM chunks of their own, loaded on first use, so /login never loads them.
  cargo leptos build --release --split \
    --bin-cargo-args=--package=bench --bin-cargo-args=--bin=qrlogin-bench
}
