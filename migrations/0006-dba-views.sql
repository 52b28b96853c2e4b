-- Views for DBAs: the quarantine and the CMS fields we do not know
-- depends: 0005-fragrance-history

-- sync.quarantine: rejected deliveries waiting for a retry or a discard.
create view sync.quarantine as
select
    i.id as inbox_id,
    i.received_at,
    i.fragrance_id,
    array(select r ->> 'code' from jsonb_array_elements(i.reasons) as r
          where r ->> 'severity' = 'error') as codes,
    (select string_agg(r ->> 'message', '; ') from jsonb_array_elements(i.reasons) as r
     where r ->> 'severity' = 'error') as messages,
    i.attempts,
    case when length(i.body) > 200 then left(encode(i.body, 'escape'), 200) || '...'
         else encode(i.body, 'escape') end as body_preview
from sync.inbox as i
where i.status = 'rejected'
order by i.id;
comment on view sync.quarantine is
    'Rejected deliveries, oldest first by inbox_id, with their error codes and sentences. Fix, then SELECT sync.retry(inbox_id); or SELECT sync.discard(inbox_id, ''why'');';
comment on column sync.quarantine.body_preview is
    'The first 200 bytes of the body, non-UTF-8 and control bytes escaped; the exact bytes are in sync.inbox.body.';

create index inbox_unknown_field_idx on sync.inbox (id)
    where reasons @> '[{"code": "field.unknown"}]';

-- sync.unknown_field: keys the CMS sent that the rules do not know (schema drift).
create view sync.unknown_field as
select
    r ->> 'field' as field,
    count(*) as deliveries,
    min(i.received_at) as first_seen,
    max(i.received_at) as last_seen,
    max(i.id) as latest_inbox_id
from sync.inbox as i
cross join lateral jsonb_array_elements(i.reasons) as r
where i.reasons @> '[{"code": "field.unknown"}]'
  and r ->> 'code' = 'field.unknown'
group by r ->> 'field';
comment on view sync.unknown_field is
    'Fields the CMS sent that the data rules do not know, with how often and when they were seen: a sign the CMS schema changed.';
