#!/usr/bin/env bash
# Create the smart library's read-only login with a password before the
# migrations run; migration 0019 finds it and only grants it smart_library_reader.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v password="${SMART_LIBRARY_DB_PASSWORD:?set SMART_LIBRARY_DB_PASSWORD}" <<'SQL'
create role smart_library_login login password :'password';
SQL
