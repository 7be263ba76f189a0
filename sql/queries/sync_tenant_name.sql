-- Tenant $1's name (for the reconnect command a log line names).
SELECT name FROM tenants WHERE id = $1
