-- A deterministic stand-in for the smart library's 5,000-row catalog.
-- Same shape as the real one (docs/cms.md): ids 0 to 4,999, names
-- up to 25 characters with many repeats, some with an accented letter and
-- one ending in a space, descriptions up to 76 characters ending in two
-- spaces, three of them quoting a word with U+0093 and U+0094 (Windows-1252
-- curly quotes read as Latin-1, as the real catalog's do), integer costs
-- 0 to 100, nothing forbidden.
-- Usage: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/catalog.sql
-- It only inserts ids that are missing, so it never overwrites a real row.
insert into public.fragrances (fragrance_id, name, description, cost, forbidden)
select
    i,
    -- Every sixth id reuses an earlier name, as the real catalog repeats
    -- names; one name in 89 carries an accented letter (U+00E9, composed),
    -- and one ends in a space.
    initcap(case when k.k % 89 = 0 then regexp_replace(k.base, 'e', chr(233)) else k.base end)
        || case when i = 4321 then ' ' else '' end,
    case when i in (1313, 2626, 3939)
         then 'Smells of ' || chr(147) || left(md5('quote' || i), 6) || chr(148) || ' in a bottle  '
         else left('Smells of ' || translate(md5('desc' || i) || md5('more' || i), '0123456789', ' eioulmnrs'),
                   10 + i % 72) || '  ' end,
    (hashtext('cost' || i) & 2147483647) % 101,
    false
from generate_series(0, 4999) as i
cross join lateral (select case when i % 6 = 5 then i / 6 else i end as k) as k0
cross join lateral (select k0.k,
                           left(translate(md5('name' || k0.k), '0123456789', 'aeioulmnrs'), 4 + k0.k % 22) as base) as k
on conflict (fragrance_id) do nothing;
