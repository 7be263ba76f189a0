-- Move up to $2 audit_log rows written before $1 to audit_log_archive, in one statement
-- (row count preserved; the daemon's roles may not delete from audit_log themselves).
SELECT deneva_archive_audit_log($1, $2)
