#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server: scripts/with-postgres.sh CMD [ARGS...]
#
# Finds Debian's PostgreSQL binaries (/usr/lib/postgresql/*/bin, newest first); when there are none
# and we run as root, installs the `postgresql` package with apt-get. Then: initdb into a temporary
# folder, start the server on a free port of 127.0.0.1 (unix socket in that folder too), create the
# database `llmops_test`, export LLMOPS_TEST_POSTGRES_URL=postgresql://USER@127.0.0.1:PORT/llmops_test,
# run CMD, and on exit stop the server and delete the folder, exiting with CMD's status.
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user that the
# Debian package creates. When PostgreSQL cannot be had, says why and runs CMD without the variable
# (the PostgreSQL tests then skip with that reason).
set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

say() { echo "with-postgres: $*" >&2; }

find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

without_postgres() {
    say "$1; running without PostgreSQL (its tests will skip)"
    shift
    unset LLMOPS_TEST_POSTGRES_URL
    exec "$@"
}

PG_BIN="$(find_bin)"
if [ -z "$PG_BIN" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's postgresql package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || true
    fi
    PG_BIN="$(find_bin)"
fi
if [ -z "$PG_BIN" ]; then
    reason="no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
    [ "$(id -u)" -ne 0 ] && reason="$reason (install Debian's postgresql package, or run as root to have it installed)"
    without_postgres "$reason" "$@"
fi

# As root, the server runs as the postgres system user; otherwise as ourselves.
AS=()
PG_USER="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u postgres >/dev/null 2>&1; then
        without_postgres "running as root and there is no 'postgres' system user to run the server as" "$@"
    fi
    AS=(runuser -u postgres --)
    PG_USER=postgres
fi

PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/llmops-pg.XXXXXX")"
chmod 755 "$PG_DIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
PG_DATA="$PG_DIR/data"
PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
started=0

cleanup() {
    if [ "$started" -eq 1 ]; then
        "${AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "${AS[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$PG_DIR/initdb.log" 2>&1; then
    cat "$PG_DIR/initdb.log" >&2
    cleanup
    trap - EXIT
    without_postgres "initdb failed (log above)" "$@"
fi
# Small and fast: a test server needs no durability (fsync off) and few resources.
if ! "${AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB" \
    >/dev/null 2>&1; then
    cat "$PG_DIR/server.log" >&2
    cleanup
    trap - EXIT
    without_postgres "the PostgreSQL server did not start (log above)" "$@"
fi
started=1
if ! "${AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" llmops_test >/dev/null 2>&1; then
    cleanup
    trap - EXIT
    without_postgres "createdb failed" "$@"
fi
export LLMOPS_TEST_POSTGRES_URL="postgresql://$PG_USER@127.0.0.1:$PG_PORT/llmops_test"
say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $LLMOPS_TEST_POSTGRES_URL (data in $PG_DIR)"
"$@"
rc=$?
exit $rc
