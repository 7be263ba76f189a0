-- A credential was connected ($1 tenant, by $2: the CLI, or the browser flow), details $3.
INSERT INTO audit_log (tenant_id, event_type, actor, details) VALUES ($1, 'credential.connected', $2, $3)
