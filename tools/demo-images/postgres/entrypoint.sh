#!/bin/sh
# The demo PostgreSQL's entrypoint: on first start (no $PGDATA/PG_VERSION) make a cluster whose superuser is
# $POSTGRES_USER (password $POSTGRES_PASSWORD, scram-sha-256 over TCP from anywhere, trust only on the pod's own
# socket) and a database $POSTGRES_DB; then run postgres in the foreground, listening on every address.
set -eu
: "${POSTGRES_USER:=ghostpay}" "${POSTGRES_DB:=ghostpay}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "demo-postgres: POSTGRES_PASSWORD is not set" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  echo "demo-postgres: made a cluster in $PGDATA with database $POSTGRES_DB" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
