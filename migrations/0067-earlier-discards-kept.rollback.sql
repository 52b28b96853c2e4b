-- sync.inbox keeps only the last discard of a delivery again
-- depends: 0066-sequences-and-constraints-say-what-they-are

alter table sync.inbox drop column earlier_discards;
