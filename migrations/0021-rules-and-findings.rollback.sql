-- Drop the rules table, the findings and the jobs
-- Our pg_cron jobs call functions that are gone by now; pg_cron itself stays (others may use it).
do $$
begin
    if to_regclass('cron.job') is not null then
        perform cron.unschedule(jobid) from cron.job where jobname like 'fragrance\_sync.%';
    end if;
end;
$$;
alter table sync.settings drop column purge_after;
drop table sync.job_run;
drop table sync.job;
drop index public.sync_fragrances_name_idx;
drop table sync.finding;
alter table sync.inbox drop column rules_version;
drop table sync.rule_version;
drop table sync.rule;
