-- Mark 9999-database-code unapplied again, so the next yoyo apply loads the database code again
-- Since db/88-deploy.sql's trigger on _yoyo_migration, yoyo writes no such record: this deletes
-- nothing but a record a deploy of an earlier release, killed between the two, left behind.
delete from _yoyo_migration where migration_id = '9999-database-code';
