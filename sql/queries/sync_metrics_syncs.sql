-- Per (tenant, platform, report type) since $1: successes, retries, final failures and
-- the mean duration of the successes (seed 000 §F).
SELECT l.tenant_id, t.name AS tenant, l.platform, l.report_type,
       count(*) FILTER (WHERE l.outcome = 'success') AS successes,
       count(*) FILTER (WHERE l.outcome = 'failure_retry') AS retries,
       count(*) FILTER (WHERE l.outcome = 'failure_final') AS finals,
       coalesce(round(avg(l.duration_ms) FILTER (WHERE l.outcome = 'success')), 0)::bigint AS avg_ms
FROM sync_log l JOIN tenants t ON t.id = l.tenant_id
WHERE l.created_at >= $1
GROUP BY l.tenant_id, t.name, l.platform, l.report_type
ORDER BY t.name, l.platform, l.report_type
