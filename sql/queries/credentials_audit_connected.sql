INSERT INTO audit_log (tenant_id, event_type, actor, details) VALUES ($1, 'credential.connected', 'cli', $2)
