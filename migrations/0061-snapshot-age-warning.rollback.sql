-- Health warns about a CMS snapshot too old to check drift against
-- depends: 0060-html-texts-and-implausible-costs

alter table sync.settings drop column snapshot_warn_after;
