-- Name turns: a writer of many names locks their rows, never the whole table
-- depends: 0033-findings-go-with-their-rule

-- The description 0025 gave the table.
comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row hashtext(name) & 1023 FOR UPDATE until it commits, so two writers of one name judge name.duplicate in turn (sync_private.lock_names). A writer of many names locks the table itself. Granted to nobody.';
