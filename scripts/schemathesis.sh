#!/usr/bin/env bash
# Contract-tests the qrlogin server against its own OpenAPI document
# (GET /api/v1/openapi.json) with Schemathesis 4: starts the given binary
# (default: the release build) on a free port with a fresh SQLite database,
# signs the demo account in for a bearer token, runs a bounded, seeded
# Schemathesis run, and stops the server. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh [target/release/qrlogin]
#
# Schemathesis lives in its own venv under the user cache (not the repo) and
# is installed only when a 4.x is not already there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:-$repo/target/release/qrlogin}"
if [[ ! -x "$binary" ]]; then
  echo "usage: $0 [QRLOGIN_BINARY]  ($binary is not an executable; build it first)" >&2
  exit 2
fi

venv="${XDG_CACHE_HOME:-$HOME/.cache}/qrlogin/schemathesis-venv"
if ! "$venv/bin/python" -c '
import importlib.metadata as m, sys
sys.exit(m.version("schemathesis").split(".")[0] != "4")' 2>/dev/null; then
  echo "==> installing schemathesis 4.x into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The server under test: rate limits off, so that the run reaches the
# handlers instead of a wall of 429s (which are documented, and would pass).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base_url="http://127.0.0.1:$port"
"$binary" --addr "127.0.0.1:$port" --public-url "$base_url" \
  --database "sqlite://$work/qrlogin.db" --site-root "$work/site" --demo \
  --limit-sign-in 0 --limit-create 0 --limit-poll 0 --limit-scan 0 --limit-decide 0 \
  >"$work/server.log" 2>&1 &
server_pid=$!
token="$(python3 - "$base_url" "$work/server.log" <<'PY'
import json, re, sys, time, urllib.request
base, log = sys.argv[1], sys.argv[2]
for _ in range(100):
    match = re.search(r"password: (\S+)", open(log).read())
    if match:
        break
    time.sleep(0.1)
else:
    sys.exit("the server printed no demo password:\n" + open(log).read())
for _ in range(50):
    try:
        request = urllib.request.Request(
            base + "/api/v1/session",
            data=json.dumps({"username": "demo", "password": match.group(1)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        print(json.load(urllib.request.urlopen(request, timeout=5))["token"])
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("cannot sign in to " + base)
PY
)"

# Schemathesis 4 reads the first schemathesis.toml it finds from the working
# directory up to the git root. Point it at our own file instead, so a stray
# config cannot change the run. The cache is off: it would write
# ./.schemathesis/ and replay earlier failures, so the seed would no longer
# define the run.
# Hypothesis (underneath) likewise keeps ./.hypothesis/; give it a fresh one.
config="$work/schemathesis.toml"
printf '[cache]\nenabled = false\n' >"$config"
export HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis"

# Checks, by Schemathesis 4 name (`schemathesis run --help`):
#   not_a_server_error            no 5xx, whatever the input
#   status_code_conformance       every status is documented for the operation
#   content_type_conformance      every Content-Type is documented
#   response_schema_conformance   bodies match their documented schema
#   response_headers_conformance  documented headers (Set-Cookie, Retry-After,
#                                 Location) match their schema, and are present
#                                 where marked `required: true` (utoipa's Header
#                                 cannot say so; set it on the JSON if wanted)
# Left out:
#   positive_data_acceptance      fails schema-valid requests answered outside
#                                 2xx/3xx/401/403/404/409/429, but most calls
#                                 need state a generator cannot make (a bound
#                                 browser cookie, an attempt in a given state, a
#                                 phone approving it), so valid-looking input
#                                 rightly gets e.g. 400 or 410 login_finished.
#   negative_data_rejection       serde accepts unknown fields and query params
#                                 wherever deny_unknown_fields is not set, and
#                                 this check reports that lenience as failure.
#                                 Invalid input is still generated (--mode all)
#                                 and must still get documented answers.
#   missing_required_header, unsupported_method, allow_header_conformance
#                                 probe routing rather than the documented contract.
#   ignored_auth                  only sound once every operation's `security` is
#                                 exact; add it when that holds.
#   use_after_free, ensure_resource_availability, object_level_authorization
#                                 need the stateful phase or a second identity.
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance

# The run signs in with the given token, so it must not sign itself out:
# skip sign-out and session revocation (the fuzzer reuses ids it saw in
# answers, e.g. from GET /api/v1/sessions, so it could revoke its own session).
#
# Only the given URL is contacted: --url overrides the document's `servers`,
# redirects are not followed (a 3xx and its Location are checked as they are),
# proxies from the environment are dropped, and no cookie or bearer values
# are made up for the documented security schemes: the token is the only
# credential. The stateful phase is off: its flows (create, scan, approve)
# need a phone identity it does not have. --max-time is not a cap (fuzzing
# repeats until it is spent); -n, one worker and a fixed seed bound the run.
#
# A wrong token is only a warning ("Authentication failed"); to make it fatal,
# add `[warnings]` / `fail-on = ["missing_auth"]` to the config above, once
# every operation that should accept the token does.
env -u http_proxy -u https_proxy -u all_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY \
  "$venv/bin/schemathesis" --config-file "$config" run "$base_url/api/v1/openapi.json" \
  --url "$base_url" \
  --header "Authorization: Bearer $token" \
  --generation-with-security-parameters false \
  --exclude-name 'DELETE /api/v1/session' \
  --exclude-name 'DELETE /api/v1/sessions/{id}' \
  --checks "$checks" \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples 100 \
  --seed 20260101 \
  --workers 1 \
  --generation-database none \
  --request-timeout 10 \
  --max-redirects 0 \
  --wait-for-schema 30
echo "schemathesis: 0 failures against $binary" >&2
