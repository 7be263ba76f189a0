-- A janitor pass's audit event ($1 type, e.g. gdpr.purge_cache), with its counts ($2), at $3.
INSERT INTO audit_log (event_type, outcome, actor, details, created_at) VALUES ($1, 'success', 'janitor', $2, $3)
