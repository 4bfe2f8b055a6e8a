#!/usr/bin/env bash
# Installs (when missing) and starts a local PostgreSQL server for the
# gridcase-postgres tests, and creates the `gridcase` role and database.
#
# Run as root on Debian (12: PostgreSQL 15). Idempotent: safe to call again on
# a machine where the server is installed, running, or both. Everything it says
# goes to stderr; stdout is only the connection URL, so CI can do
#
#     export GRIDCASE_TEST_PG_URL="$(bash .ci/postgres.sh)"
set -euo pipefail

GC_PG_ROLE="${GC_PG_ROLE:-gridcase}"
GC_PG_PASSWORD="${GC_PG_PASSWORD:-gridcase}"
GC_PG_DB="${GC_PG_DB:-gridcase}"

say() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "run me as root (I install packages and start the server)"
    exit 1
fi

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
    say "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

gc_pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$gc_pg_version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    say "creating cluster $gc_pg_version/main"
    pg_createcluster "$gc_pg_version" main >&2
fi
gc_pg_port="$(pg_lsclusters -h | awk -v v="$gc_pg_version" '$1 == v && $2 == "main" { print $3 }')"

# pg_ctlcluster status: 0 running, 3 stopped; start on a running cluster is an error.
if ! pg_ctlcluster "$gc_pg_version" main status >/dev/null 2>&1; then
    say "starting cluster $gc_pg_version/main on port $gc_pg_port"
    pg_ctlcluster "$gc_pg_version" main start >&2
fi
for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$gc_pg_port"; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$gc_pg_port" >&2

gc_psql() { su postgres -c "psql -p $gc_pg_port -v ON_ERROR_STOP=1 -tAq $*"; }
if [ "$(gc_psql "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$GC_PG_ROLE'\"")" != 1 ]; then
    say "creating role $GC_PG_ROLE"
    gc_psql "-c \"CREATE ROLE $GC_PG_ROLE LOGIN SUPERUSER PASSWORD '$GC_PG_PASSWORD'\"" >&2
fi
if [ "$(gc_psql "-c \"SELECT 1 FROM pg_database WHERE datname = '$GC_PG_DB'\"")" != 1 ]; then
    say "creating database $GC_PG_DB"
    su postgres -c "createdb -p $gc_pg_port -O $GC_PG_ROLE $GC_PG_DB" >&2
fi

GRIDCASE_TEST_PG_URL="postgres://$GC_PG_ROLE:$GC_PG_PASSWORD@127.0.0.1:$gc_pg_port/$GC_PG_DB"
export GRIDCASE_TEST_PG_URL
say "ready: $GRIDCASE_TEST_PG_URL"
echo "$GRIDCASE_TEST_PG_URL"
