#!/usr/bin/env bash
# Starts a local PostgreSQL for the test suite and creates the role the tests connect as
# (README "Develop"). Idempotent: run it before `npm test` on a machine where PostgreSQL is
# installed but not running. Installs Debian's `postgresql` when it is missing and we are root.
#
# The tests read MESHCFG_TEST_POSTGRES_URL (default postgres://meshcfg:meshcfg@127.0.0.1:5432/postgres);
# each test creates its own database there and drops it afterwards.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

if ! command -v pg_lsclusters >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi

# The first cluster Debian created (for example "15 main"); create one when there is none.
read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  cluster=main
  pg_createcluster "$version" "$cluster" >/dev/null
fi
if ! pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1==v && $2==c && $4=="online" {found=1} END {exit !found}'; then
  pg_ctlcluster "$version" "$cluster" start
fi

# Enough connections for the replica tests (several servers, each with a pool).
run_psql() { su postgres -c "psql -X -q -v ON_ERROR_STOP=1 -p $(pg_conftool -s "$version" "$cluster" show port) $*"; }
max=$(run_psql "-tAc 'SHOW max_connections'")
if [ "$max" -lt 300 ]; then
  run_psql "-c 'ALTER SYSTEM SET max_connections = 300'"
  pg_ctlcluster "$version" "$cluster" restart
fi
if [ "$(run_psql "-tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'meshcfg'\"")" != 1 ]; then
  run_psql "-c \"CREATE ROLE meshcfg LOGIN SUPERUSER PASSWORD 'meshcfg'\""
fi
echo "PostgreSQL $version/$cluster is running; tests connect as meshcfg@127.0.0.1."
