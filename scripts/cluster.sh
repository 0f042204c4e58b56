#!/usr/bin/env bash
# Runs qrlogin as several instances would run in production, on this
# machine: two release servers behind nginx on http://127.0.0.1:3100
# (round robin, no stickiness, so any instance must be able to answer any
# request), sharing one PostgreSQL (accounts, sessions) and one Redis (login
# attempts). Redis and PostgreSQL listen on UNIX sockets only and keep
# their data in data/cluster/ between runs. Ctrl-C stops everything this
# started. Extra arguments go to both `qrlogin serve`s.
#
#   QRLOGIN_CLUSTER_PORT=3100      nginx's port; the instances take the next two
#   QRLOGIN_CLUSTER_DIR=DIR        data, sockets and logs (default data/cluster)
#   QRLOGIN_CLUSTER_NO_BUILD=1     use the release build that is there
#   QRLOGIN_CLUSTER_BIN=FILE       the server (default target/release/qrlogin)
#   QRLOGIN_CLUSTER_USERS=FILE     accounts to add, one USERNAME:DISPLAY NAME:PASSWORD
#                                  a line (the password is the rest of the line);
#                                  existing ones are left alone
#   QRLOGIN_CLUSTER_THROWAWAY=1    for tests: PostgreSQL without fsync, and DIR
#                                  deleted when the cluster stops (kept after a failure)
#
# DIR/instance-N.pid and DIR/instance-N.log name each instance's process and
# output; the response header X-Upstream names the instance that answered.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# shellcheck source=scripts/services.sh
source "$REPO_ROOT/scripts/services.sh"

# Relative paths are the caller's, so resolve them before moving.
binary="$(realpath -m "${QRLOGIN_CLUSTER_BIN:-$REPO_ROOT/target/release/qrlogin}")"
users_file=""
if [[ -n "${QRLOGIN_CLUSTER_USERS:-}" ]]; then
  users_file="$(realpath "$QRLOGIN_CLUSTER_USERS")"
fi
dir="${QRLOGIN_CLUSTER_DIR:-$REPO_ROOT/data/cluster}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$REPO_ROOT"

port="${QRLOGIN_CLUSTER_PORT:-3100}"
instance_ports=("$((port + 1))" "$((port + 2))")
public_url="http://127.0.0.1:$port"
database_url="postgres://postgres@localhost/qrlogin?host=$dir&port=5432"
redis_url="redis+unix://$dir/redis.sock"
throwaway="${QRLOGIN_CLUSTER_THROWAWAY:-}"

ensure_redis
ensure_postgres
ensure_nginx
if [[ "${QRLOGIN_CLUSTER_NO_BUILD:-}" != 1 ]]; then
  ensure_build_tools
  say "building the release site and server"
  release_build_with_bench
fi
if [[ ! -x "$binary" ]]; then
  echo "cluster: $binary is not an executable; build it first" >&2
  exit 1
fi

# A run killed with SIGKILL leaves its daemons behind; stop them first.
stop_leftovers() {
  local n name
  # ps shows at most 15 characters of a command's name.
  name="$(basename "$binary" | cut -c 1-15)"
  for n in 1 2; do services_stop_pidfile "$dir/instance-$n.pid" "$name"; done
  stop_balancer "$dir/nginx"
  stop_postgres "$dir"
  stop_redis "$dir"
  rm -f "$dir"/instance-*.pid
}

pids=()
any_alive() {
  local pid
  for pid in "$@"; do services_alive "$pid" && return 0; done
  return 1
}
cleanup() {
  # 130/143: Ctrl-C or SIGTERM, the normal ends of a cluster.
  local status=$?
  # A second Ctrl-C (an impatient one, or one a supervisor forwards) must
  # not cut the clean-up short and leave Redis, PostgreSQL or nginx behind.
  trap - EXIT
  trap '' INT TERM
  say "stopping the cluster"
  local pid _
  # SIGTERM: graceful shutdown; a server still busy after 10 s is killed.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    any_alive "${pids[@]}" || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_leftovers
  if [[ "$throwaway" == 1 ]]; then
    case "$status" in
      0 | 130 | 143) rm -rf "$dir" ;;
      *) say "kept $dir for its logs" ;;
    esac
  fi
}

stop_leftovers
for p in "$port" "${instance_ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "cluster: something already listens on 127.0.0.1:$p (QRLOGIN_CLUSTER_PORT moves all three ports)" >&2
    exit 1
  fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Redis and PostgreSQL in $dir"
services_prepare_dir "$dir"
start_redis "$dir"
if [[ "$throwaway" == 1 ]]; then start_postgres "$dir" fast; else start_postgres "$dir"; fi
exists="$("$PG_BIN/psql" -h "$dir" -p 5432 -U postgres -d postgres -XAt \
  -c "SELECT 1 FROM pg_database WHERE datname = 'qrlogin'")"
if [[ "$exists" != 1 ]]; then
  "$PG_BIN/createdb" -h "$dir" -p 5432 -U postgres qrlogin
fi

# Starts instance N on PORT; its output goes to DIR/instance-N.log and,
# prefixed with the port, to the terminal.
start_instance() {
  local n="$1" p="$2" pid _
  shift 2
  "$binary" serve --addr "127.0.0.1:$p" --public-url "$public_url" \
    --database "$database_url" --redis "$redis_url" --trusted-proxies 127.0.0.1 "$@" \
    > >(tee "$dir/instance-$n.log" | sed -u "s/^/[$p] /") 2>&1 &
  pid=$!
  pids+=("$pid")
  echo "$pid" >"$dir/instance-$n.pid"
  for _ in $(seq 300); do
    if ! services_alive "$pid"; then
      echo "cluster: instance $n stopped; see $dir/instance-$n.log" >&2
      exit 1
    fi
    curl -fs -o /dev/null "http://127.0.0.1:$p/healthz" && return 0
    sleep 0.1
  done
  echo "cluster: instance $n does not answer on 127.0.0.1:$p" >&2
  exit 1
}

# One at a time, so that only the first runs the migrations on a new
# database. Only the first makes the demo account: --demo sets a new
# password at every start.
say "qrlogin instances on 127.0.0.1:${instance_ports[0]} and 127.0.0.1:${instance_ports[1]}"
start_instance 1 "${instance_ports[0]}" --demo "$@"
start_instance 2 "${instance_ports[1]}" "$@"
password="$(sed -n 's/.*Demo account .*password: \([^ ]*\).*/\1/p' "$dir/instance-1.log" | tail -n 1)"

# After the first instance has migrated the database, and before nginx
# answers: whoever waits for nginx (the e2e tests) finds the accounts there.
add_users() {
  local existing name display pass
  existing="$("$binary" user list --database "$database_url" --redis "$redis_url" | cut -f 1)"
  while IFS=: read -r name display pass || [[ -n "$name" ]]; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    # Usernames are stored in lower case.
    grep -qxF "${name,,}" <<<"$existing" && continue
    printf '%s\n' "$pass" |
      "$binary" user add "$name" --display-name "$display" --database "$database_url" --redis "$redis_url"
  done <"$users_file"
}
if [[ -n "$users_file" ]]; then
  say "accounts from $users_file"
  add_users
fi

say "nginx on 127.0.0.1:$port"
start_balancer "$dir/nginx" "$port" "${instance_ports[@]}"

cat <<EOF

  qrlogin cluster: $public_url/login  (nginx, round robin over
  127.0.0.1:${instance_ports[0]} and 127.0.0.1:${instance_ports[1]}; Redis and PostgreSQL in $dir)
  Demo account  username: demo   password: ${password:-(see $dir/instance-1.log)}
  Sign in on a phone at $public_url/m and scan the code at $public_url/login.
  Ctrl-C stops everything.

EOF

# Until Ctrl-C, or until both instances have stopped.
wait "${pids[@]}" || true
