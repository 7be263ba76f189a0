INSERT INTO audit_log (tenant_id, event_type, actor, details) VALUES ($1, $2, $3, $4)
