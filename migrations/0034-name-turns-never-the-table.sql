-- Name turns: a writer of many names locks their rows, never the whole table
-- depends: 0033-findings-go-with-their-rule

-- Only the table's description changes (the code is db/45-findings.sql):
-- past 64 names a writer locked sync_private.name_turn itself, so a
-- transaction left open after writing them (a DBA's bulk rename, a session
-- of the hook's login) held back every merge of a name, of any fragrance.
comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row hashtext(name) & 1023 FOR UPDATE until it commits, so two writers of one name judge name.duplicate in turn (sync_private.lock_names); a writer of many names locks their rows, at most all 1,024, never the table. The hook''s merger passes over a turn held longer than a merge holds one (sync_private.take_turns). Granted to nobody.';
