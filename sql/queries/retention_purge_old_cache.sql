-- Delete up to $2 cached reports fetched before $1 (older than the retention, fresh or not).
-- Rows another transaction holds are skipped (a later batch takes them): the janitor
-- never waits on, or deadlocks with, the work it cleans up after.
WITH doomed AS (
    SELECT tenant_id, platform, account_id, report_type, date_range FROM metric_cache
    WHERE fetched_at < $1 ORDER BY fetched_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM metric_cache c USING doomed d
    WHERE (c.tenant_id, c.platform, c.account_id, c.report_type, c.date_range)
        = (d.tenant_id, d.platform, d.account_id, d.report_type, d.date_range)
    RETURNING 1
)
SELECT count(*) FROM gone
