#!/usr/bin/env bash
# The smart library's read-only login, with a password, and its one grant,
# before (and whatever becomes of) the sync's migrations: the platform's core
# service starts on its own database, as it did before the sync existed.
# Migration 0019 finds both roles and the grant, and only adds their comments.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v password="${SMART_LIBRARY_DB_PASSWORD:?set SMART_LIBRARY_DB_PASSWORD}" <<'SQL'
create role smart_library_reader nologin;
create role smart_library_login login password :'password';
grant smart_library_reader to smart_library_login;
grant select on public.fragrances to smart_library_reader;
SQL
