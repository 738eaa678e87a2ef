#!/usr/bin/env bash
# Runs a command with FUGUE_TEST_POSTGRES_URL pointing at a Postgres server that
# the tests may create databases on:
#   1. DATABASE_URL when set,
#   2. else the server at 127.0.0.1:5432 when it answers,
#   3. else a throwaway cluster (initdb + pg_ctl in a temp dir, removed on exit),
#      installing Debian's postgresql first when it is missing.
set -euo pipefail

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

start_throwaway_cluster() {
  local port
  bin=$(pg_bin) || {
    echo "with-postgres: installing postgresql with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
  }
  dir=$(mktemp -d /tmp/fugue-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # initdb refuses to run as root; the cluster belongs to the postgres user then.
  as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
  trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  echo "with-postgres: started a throwaway cluster on port $port" >&2
  FUGUE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ -n "${DATABASE_URL:-}" ]; then
  FUGUE_TEST_POSTGRES_URL="$DATABASE_URL"
elif (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  FUGUE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
else
  start_throwaway_cluster
fi
export FUGUE_TEST_POSTGRES_URL
# The server under test must not pick up the caller's database.
unset DATABASE_URL
"$@"
