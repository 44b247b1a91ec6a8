#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the test suite, so the storage code is tested
# on Postgres beside SQLite. Sourced by ./test after bootstrap.sh: start_test_postgres starts
# it and exports WAAKHOND_TEST_POSTGRES_URL; stop_test_postgres stops it and deletes its files.
# fsync is off: the data is thrown away after the run.

TEST_POSTGRES_DIR=""

_as_postgres() {
  # initdb refuses to run as root; the Debian package creates the postgres user.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_test_postgres() {
  install_debian_packages postgresql
  local bin port
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  port="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  TEST_POSTGRES_DIR="$(mktemp -d /tmp/waakhond-postgres.XXXXXX)"
  [ "$(id -u)" -eq 0 ] && chown postgres "$TEST_POSTGRES_DIR"
  _as_postgres "$bin/initdb" -D "$TEST_POSTGRES_DIR/data" -U postgres -A trust --no-sync \
    >/dev/null
  _as_postgres "$bin/pg_ctl" -D "$TEST_POSTGRES_DIR/data" -l "$TEST_POSTGRES_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $TEST_POSTGRES_DIR -c fsync=off" \
    start >/dev/null
  export WAAKHOND_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL for the tests on 127.0.0.1:$port"
}

stop_test_postgres() {
  [ -n "$TEST_POSTGRES_DIR" ] || return 0
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  _as_postgres "$bin/pg_ctl" -D "$TEST_POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$TEST_POSTGRES_DIR"
}
