UPDATE oauth_grants SET revoked_at = $2, revoked_reason = $3
WHERE client_id = $1 AND revoked_at IS NULL
RETURNING id
