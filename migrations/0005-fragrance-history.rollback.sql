-- Remove the history trigger from public.fragrances and the history it kept
drop trigger _900_sync_record_history on public.fragrances;
drop function sync._record_history();
drop table sync.fragrance_history;
