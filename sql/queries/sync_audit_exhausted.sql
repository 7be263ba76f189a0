-- The sync.exhausted audit event (seed 000 §C2) for one tenant, with its details.
INSERT INTO audit_log (tenant_id, event_type, outcome, actor, details)
VALUES ($1, 'sync.exhausted', 'failure', 'refresh-tenant-report', $2)
