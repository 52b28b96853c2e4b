-- public.fragrances belongs to the smart library: rolling back never drops it
-- or its rows, so this rollback deliberately does nothing.
do $$ begin end; $$;
