-- Mark 9999-database-code unapplied again, so the next yoyo apply loads the database code again
delete from _yoyo_migration where migration_id = '9999-database-code';
