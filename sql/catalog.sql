-- A deterministic stand-in for the smart library's 5,000-row catalog.
-- Same shape as the real one (docs/cms.md): ids 0 to 4,999, names
-- up to 25 characters with many repeats, descriptions up to 76 characters
-- ending in two spaces, integer costs 0 to 100, nothing forbidden.
-- Usage: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/catalog.sql
-- It only inserts ids that are missing, so it never overwrites a real row.
insert into public.fragrances (fragrance_id, name, description, cost, forbidden)
select
    i,
    -- Every sixth id reuses an earlier name, as the real catalog repeats names.
    initcap(left(translate(md5('name' || (case when i % 6 = 5 then i / 6 else i end)),
                           '0123456789', 'aeioulmnrs'),
                 4 + (case when i % 6 = 5 then i / 6 else i end) % 22)),
    left('Smells of ' || translate(md5('desc' || i) || md5('more' || i), '0123456789', ' eioulmnrs'),
         10 + i % 72) || '  ',
    (hashtext('cost' || i) & 2147483647) % 101,
    false
from generate_series(0, 4999) as i
on conflict (fragrance_id) do nothing;
