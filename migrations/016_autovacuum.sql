-- 016: autovacuum that keeps up with retention.
--
-- A busy pool inserts tens of thousands of results a second and the
-- scheduler's leader deletes as many (retention).  With PostgreSQL's
-- defaults a table is vacuumed only once a fifth of it is dead, and the
-- vacuum itself is throttled to a few MB/s: at 12 million rows that is 2.4
-- million dead rows before the first vacuum starts, and the table and its
-- indexes grow on while it crawls, instead of reusing the space retention
-- freed.  These tables are vacuumed after 1 % of their rows (at least
-- 10,000) died or were inserted, with ten times the default cost budget,
-- so that each vacuum is short and the space is reused at the rate it is
-- freed.  The tables that rarely change keep the server's defaults.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sluice_jobs', 'sluice_claims', 'sluice_job_attempts'] LOOP
        EXECUTE format('ALTER TABLE %I SET ('
                       ' autovacuum_vacuum_scale_factor = 0.01,'
                       ' autovacuum_vacuum_threshold = 10000,'
                       ' autovacuum_vacuum_insert_scale_factor = 0.01,'
                       ' autovacuum_vacuum_insert_threshold = 10000,'
                       ' autovacuum_analyze_scale_factor = 0.02,'
                       ' autovacuum_vacuum_cost_limit = 2000)', t);
    END LOOP;
END
$$;
