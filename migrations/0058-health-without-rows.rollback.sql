-- Health judges a scheduled job that never ran
-- depends: 0057-hand-change-positions

alter table sync.job drop column enabled_at;
