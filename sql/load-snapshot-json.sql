-- Load a JSON export of the CMS catalog into sync.cms_snapshot (replacing it).
-- The moment, on the smart library database, before the export (a change
-- delivered after it and missing from the export is then newer, never undone):
--   TAKEN_AT=$(psql "$DATABASE_URL" -Atc 'select now()')
-- Export, on the CMS database:
--   psql "$CMS_URL" -Atc 'select json_agg(f) from public.fragrances as f' > cms.json
-- Load, on the smart library database (psql reads the file; jsonb holds at most
-- 256 MB, about 1.6 million fragrances, past which the load fails with
-- SQLSTATE 54000: load a CSV export instead, docs/drift-and-undo.md):
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v taken_at="$TAKEN_AT" -v file=cms.json -f sql/load-snapshot-json.sql
-- Without taken_at the export is dated at its load, with a WARNING when a
-- change received before the load differs from it (sync.repair() would undo
-- it if the export is older).
\set rows `cat :'file'`
\if :{?taken_at}
select sync.load_snapshot(:'rows'::jsonb, :'file', :'taken_at'::timestamptz) as loaded;
\else
select sync.load_snapshot(:'rows'::jsonb, :'file') as loaded;
\endif
select * from sync.drift_summary;
