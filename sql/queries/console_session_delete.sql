-- Sign console session $1 out; its role, nothing if it was gone already.
DELETE FROM admin_sessions WHERE id = $1 RETURNING role
