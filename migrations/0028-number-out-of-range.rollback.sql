-- The rule body.number_out_of_range: a JSON number beyond what PostgreSQL's numeric holds
-- depends: 0025-name-turns 0026-purge-age-in-one-direction 0027-logins-hold-their-database

delete from sync.rule where code = 'body.number_out_of_range';
