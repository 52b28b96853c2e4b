-- A repair's delivery counts at its snapshot's inbox position, not at its own id
-- depends: 0070-final-sigma-lookalikes

alter table sync.inbox drop column counts_at;
