-- An operator console event: $1 tenant (NULL: none), $2 type, $3 outcome, $4 actor
-- (`console:<role>:<session id prefix>`, never a token), $5 details.
INSERT INTO audit_log (tenant_id, event_type, outcome, actor, details) VALUES ($1, $2, $3, $4, $5)
