#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests (CI and developers alike).
#
#   eval "$(.ci/postgres.sh start)"   # prints `export EITP_BENCH_TEST_PG_URL=postgresql://…`
#   python -m pytest tests/store/test_store.py
#   .ci/postgres.sh stop
#   .ci/postgres.sh server-stop / server-start   # an outage: the server down, then up again (same port, data)
#
# The cluster lives in a temporary folder (recorded in $EITP_PG_STATE, default /tmp/eitp-bench-pg.state),
# listens on 127.0.0.1 only, on $EITP_PG_PORT (default: a free port), with password authentication over
# TCP so the tests can check what a wrong password says. Run as root, it installs Debian's `postgresql`
# if missing and runs initdb/pg_ctl as the `postgres` user (the server refuses to run as root).
set -euo pipefail

STATE=${EITP_PG_STATE:-/tmp/eitp-bench-pg.state}

log() { echo "postgres.sh: $*" >&2; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return; }
  return 1
}

ensure_installed() {
  bindir >/dev/null && return 0
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's postgresql package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  bindir >/dev/null || { log "no PostgreSQL binaries (install the postgresql package)"; return 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Run a PostgreSQL binary as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if [ -f "$STATE" ]; then
    log "already started ($STATE); run '$0 stop' first"
    cat "$STATE.env"
    return 0
  fi
  ensure_installed
  local bin dir port password
  bin=$(bindir)
  dir=$(mktemp -d /tmp/eitp-bench-pg.XXXXXX)
  port=${EITP_PG_PORT:-$(free_port)}
  password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir" "$dir/pwfile"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pwfile"
  # Throwaway data: no fsync, small buffers, local TCP only; the socket in our folder, not /var/run.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  echo "$dir" >"$STATE"
  echo "export EITP_BENCH_TEST_PG_URL=postgresql://postgres:$password@127.0.0.1:$port/postgres" >"$STATE.env"
  log "PostgreSQL on 127.0.0.1:$port, data in $dir"
  cat "$STATE.env"
}

stop() {
  [ -f "$STATE" ] || { log "not started"; return 0; }
  local dir bin
  dir=$(cat "$STATE")
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir" "$STATE" "$STATE.env"
  log "stopped and removed $dir"
}

# An outage for the fleet-store tests: the cluster stays, only the server stops (and starts again with
# the options it ran with, from postmaster.opts).
server_stop() {
  local dir
  dir=$(cat "$STATE")
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

server_start() {
  local dir opts
  dir=$(cat "$STATE")
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && return 0  # already up
  opts=$(cut -d' ' -f2- "$dir/data/postmaster.opts")
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  server-stop) server_stop ;;
  server-start) server_start ;;
  *) echo "usage: $0 start|stop|server-stop|server-start" >&2; exit 2 ;;
esac
