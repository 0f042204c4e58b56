# shellcheck shell=bash
# Redis, PostgreSQL and nginx for the tests and for scripts/cluster.sh. Each
# server keeps everything under one folder and listens only on UNIX sockets
# in it (nginx excepted), so that runs collide neither with each other nor
# with a system server. Sourced by scripts/test.sh and scripts/cluster.sh:
#   start_test_services DIR    throwaway Redis + PostgreSQL (no fsync); exports
#                              QRLOGIN_TEST_REDIS, QRLOGIN_TEST_POSTGRES,
#                              QRLOGIN_TEST_REDIS_SERVER, QRLOGIN_TEST_PG_BIN
#   stop_test_services DIR     stops them; never fails
#   services_prepare_dir DIR   checks DIR and lets the postgres user write it
#   start_redis DIR, stop_redis DIR
#   start_postgres DIR [durable|fast], stop_postgres DIR
#   start_balancer PREFIX PORT UPSTREAM_PORT...   nginx, round robin (PREFIX
#                              inside a prepared DIR: its worker is unprivileged)
#   stop_balancer PREFIX
# Redis: redis+unix://DIR/redis.sock
# PostgreSQL: postgres://postgres@localhost/DB?host=DIR&port=5432 (user
# postgres, trust authentication; sqlx takes a host starting with / as the
# folder of the socket).

if ! declare -F say >/dev/null; then
  # shellcheck source=scripts/setup.sh
  source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
fi

# The folder goes into socket paths (at most 107 bytes), URLs and config
# files unescaped, so it is kept short and plain.
services_prepare_dir() {
  local dir="$1"
  case "$dir" in
    /*) ;;
    *) echo "services: $dir is not an absolute path" >&2; return 1 ;;
  esac
  case "$dir" in
    *[!A-Za-z0-9/._-]*)
      echo "services: $dir: only letters, digits and / . _ - may appear in the folder's path" >&2
      return 1 ;;
  esac
  if [ "${#dir}" -gt 80 ]; then
    echo "services: $dir is too long for a UNIX socket path" >&2
    return 1
  fi
  mkdir -p "$dir" || return 1
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root; its user must be able to write the
    # folder (initdb, the socket). 711: nobody else can list or write it,
    # nginx's unprivileged worker can still pass through.
    chown postgres:postgres "$dir" && chmod 711 "$dir" || return 1
    if ! runuser -u postgres -- test -w "$dir"; then
      echo "services: the postgres user cannot reach $dir (a parent folder is closed to it)" >&2
      return 1
    fi
  fi
}

# Runs one of PostgreSQL's server tools, as the postgres user when root.
pg_tool() {
  local tool="$1"
  shift
  if [ "$(id -u)" -eq 0 ]; then
    # From /: the caller's folder may be closed to postgres.
    (cd / && runuser -u postgres -- "$PG_BIN/$tool" "$@")
  else
    "$PG_BIN/$tool" "$@"
  fi
}

# True while PID is a live process (a zombie no longer counts: a container's
# init may be slow to reap daemons).
services_alive() {
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$stat" != Z* ]]
}

# Stops the process in PIDFILE if it still runs NAME (a stale file may name
# an unrelated process by now): SIGTERM, then SIGKILL after 10 s.
services_stop_pidfile() {
  local file="$1" name="$2" pid _
  pid="$(head -n 1 "$file" 2>/dev/null)" || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$name" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    services_alive "$pid" || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# Appendonly with fsync on every write: approved attempts must survive a
# Redis restart. The config is rewritten at every start, so edits here
# reach existing data folders.
start_redis() {
  local dir="$1" _
  cat >"$dir/redis.conf" <<EOF || return 1
# Written by scripts/services.sh at every start.
port 0
unixsocket $dir/redis.sock
unixsocketperm 777
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
appendonly yes
appendfsync always
save ""
EOF
  redis-server "$dir/redis.conf" || return 1
  # It may still be loading its appendonly file.
  for _ in $(seq 300); do
    [ "$(redis-cli -s "$dir/redis.sock" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "services: Redis in $dir did not answer; the end of $dir/redis.log:" >&2
  tail -n 20 "$dir/redis.log" >&2
  return 1
}

stop_redis() {
  services_stop_pidfile "$1/redis.pid" redis-server || true
}

# durable: the defaults. fast: no fsync at all, for throwaway test data.
start_postgres() {
  local dir="$1" mode="${2:-durable}" initdb_opts=() opts
  # -k and listen_addresses='': the socket in DIR, and no TCP at all.
  opts="-k $dir -c listen_addresses='' -p 5432"
  if [ "$mode" = fast ]; then
    initdb_opts=(--no-sync)
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if [ ! -f "$dir/pg/PG_VERSION" ]; then
    # Locale C: the machine's LANG may name a locale that is not installed.
    if ! pg_tool initdb -D "$dir/pg" -A trust -U postgres -E UTF8 --locale=C \
      "${initdb_opts[@]}" >"$dir/initdb.log" 2>&1; then
      echo "services: initdb failed:" >&2
      cat "$dir/initdb.log" >&2
      return 1
    fi
  fi
  if ! pg_tool pg_ctl -D "$dir/pg" -w -t 60 -l "$dir/pg.log" -o "$opts" start >/dev/null; then
    echo "services: PostgreSQL in $dir did not start; the end of $dir/pg.log:" >&2
    tail -n 20 "$dir/pg.log" >&2
    return 1
  fi
}

stop_postgres() {
  local dir="$1"
  [ -f "$dir/pg/postmaster.pid" ] || return 0
  if ! pg_tool pg_ctl -D "$dir/pg" -m fast -w -t 30 stop >/dev/null 2>&1; then
    services_stop_pidfile "$dir/pg/postmaster.pid" postgres || true
  fi
}

start_test_services() {
  local dir="$1"
  ensure_redis
  ensure_postgres
  services_prepare_dir "$dir" || return 1
  if ! start_redis "$dir" || ! start_postgres "$dir" fast; then
    stop_test_services "$dir"
    return 1
  fi
  export QRLOGIN_TEST_REDIS="redis+unix://$dir/redis.sock"
  export QRLOGIN_TEST_POSTGRES="postgres://postgres@localhost/postgres?host=$dir&port=5432"
  # For the tests that stop and restart servers of their own.
  QRLOGIN_TEST_REDIS_SERVER="$(command -v redis-server)"
  export QRLOGIN_TEST_REDIS_SERVER
  export QRLOGIN_TEST_PG_BIN="$PG_BIN"
}

stop_test_services() {
  stop_postgres "$1" || true
  stop_redis "$1" || true
}

# nginx in front of 127.0.0.1:UPSTREAM_PORT..., round robin with no
# stickiness: whichever instance answers must know everything. A dead
# instance is skipped (connect timeout 1 s, one retry on the next) and
# tried again after 1 s, not nginx's default 10 s: a restarted instance
# takes its share back at once.
start_balancer() {
  local prefix="$1" port="$2" upstreams="" p
  shift 2
  for p in "$@"; do upstreams+="    server 127.0.0.1:$p max_fails=1 fail_timeout=1s;"$'\n'; done
  mkdir -p "$prefix/tmp" || return 1
  # Unquoted heredoc: \$ marks nginx's own variables.
  cat >"$prefix/nginx.conf" <<EOF || return 1
# Written by scripts/services.sh at every start.
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log;
events { worker_connections 1024; }
http {
  log_format upstream '\$remote_addr "\$request" \$status -> \$upstream_addr \${request_time}s';
  access_log $prefix/access.log upstream;
  client_body_temp_path $prefix/tmp/client_body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;

  upstream qrlogin {
$upstreams    keepalive 16;
  }

  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://qrlogin;
      # Keep-alive to the instances.
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # \$http_host keeps the port, which the server's Origin check compares.
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      # qrlogin reads both: a client's own Forwarded must not reach it (one
      # that disagrees with X-Forwarded-For makes the client unknown).
      proxy_set_header Forwarded "";
      proxy_set_header X-Forwarded-Proto \$scheme;
      # Long polls last up to 30 s.
      proxy_read_timeout 60s;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 2;
      # Which instance answered (both, comma-separated, after a retry).
      add_header X-Upstream \$upstream_addr always;
    }
  }
}
EOF
  # -e: nginx opens its error log before reading the config.
  if ! nginx -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log"; then
    echo "services: nginx did not start; the end of $prefix/error.log:" >&2
    tail -n 20 "$prefix/error.log" >&2
    return 1
  fi
}

stop_balancer() {
  # SIGTERM: nginx's fast shutdown; SIGQUIT would wait out the long polls.
  services_stop_pidfile "$1/nginx.pid" nginx || true
}
