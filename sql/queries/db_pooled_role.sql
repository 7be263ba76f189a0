-- Whether the session's login starts every session as deneva_system by itself (ALTER ROLE
-- ... SET role), for this database or all: what transaction pooling needs. Also the login.
SELECT session_user::text AS login, EXISTS (
    SELECT 1 FROM pg_db_role_setting s
    WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = session_user)
      AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
      AND 'role=deneva_system' = ANY (s.setconfig)
) AS ok
