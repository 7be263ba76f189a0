SELECT 1 FROM tenants WHERE id = $1
