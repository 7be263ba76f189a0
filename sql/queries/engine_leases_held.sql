-- Which of the runs $1 (lease tokens $2) still run under those leases (no lock: for runs
-- a renewal skipped because another writer held them; the rest were lost).
SELECT r.id FROM unnest($1::uuid[], $2::uuid[]) AS h (id, token)
JOIN engine_runs r ON r.id = h.id AND r.lease_token = h.token
WHERE r.status = 'running'
