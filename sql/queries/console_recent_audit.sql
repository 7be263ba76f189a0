-- The latest $1 audit events written by the operator console (actor `console:...`) since
-- $2, newest first, with the tenant's name where there is one: a backward range scan of
-- audit_log_created, bounded by the window.
SELECT a.created_at, a.event_type, a.outcome, a.actor, a.details, t.name AS tenant
FROM audit_log a LEFT JOIN tenants t ON t.id = a.tenant_id
WHERE a.created_at >= $2 AND a.actor LIKE 'console:%'
ORDER BY a.created_at DESC, a.id DESC
LIMIT $1
