-- Single use: only the first redemption of an unexpired code finds its tenant.
UPDATE oauth_connect_codes SET used_at = $2
WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
RETURNING tenant_id
