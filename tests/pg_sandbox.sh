#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a unix socket, for tests and the demo.
#
#   tests/pg_sandbox.sh start [DIR]   initdb + start; prints the database URL (DIR: new temp dir)
#   tests/pg_sandbox.sh stop DIR      stop the server and delete DIR
#   tests/pg_sandbox.sh restart DIR   fast restart (for database-fault tests)
#   tests/pg_sandbox.sh url DIR       print the URL again
#
# Works as root (the server runs as the `postgres` user: initdb refuses root)
# and as a normal user. Listens on no TCP address, only on DIR's socket.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pg_sandbox: no PostgreSQL server found under /usr/lib/postgresql (run make deps)" >&2; exit 1; }
port=${PG_SANDBOX_PORT:-54329}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() { echo "postgresql:///dagrun?host=$1&port=$port&user=postgres"; }

start() {
    local dir=${1:-}
    [ -n "$dir" ] || dir=$(mktemp -d /tmp/dagrun-pg.XXXXXX)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        runuser -u postgres -- test -x "$dir" || {
            echo "pg_sandbox: $dir is not reachable by the postgres user (a parent folder is private); use a folder under /tmp" >&2
            exit 1; }
    fi
    chmod 700 "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
CONF
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bindir/createdb" -h "$dir" -p "$port" -U postgres dagrun
    url "$dir"
}

stop() {
    local dir=$1
    [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

restart() {
    as_owner "$bindir/pg_ctl" -D "$1/data" -l "$1/server.log" -m fast -w -t 60 restart >/dev/null
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:?usage: pg_sandbox.sh stop DIR}" ;;
    restart) restart "${2:?usage: pg_sandbox.sh restart DIR}" ;;
    url) url "${2:?usage: pg_sandbox.sh url DIR}" ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
