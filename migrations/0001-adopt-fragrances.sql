-- Adopt the smart library's public.fragrances as it is, or create it on an empty database
-- depends:

-- The smart library owns this table and its 5,000-row catalog. We create it
-- only where it is missing, with the contract's DDL to the letter, and never
-- alter, rewrite or comment on an existing one.
create table if not exists public.fragrances(
    fragrance_id serial primary key,
    name varchar(150),
    description varchar(1024),
    cost numeric,
    forbidden boolean default 'f'
);
