#!/usr/bin/env bash
# Create the hook's login with a password before the migrations run; the
# migrations find it and only grant it the sync_hook role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v password="${HOOK_DB_PASSWORD:?set HOOK_DB_PASSWORD}" <<'SQL'
create role sync_hook_login login password :'password';
SQL
