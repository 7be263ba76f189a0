-- The embedded server's app login $1 as it stands (read by the superuser): its password
-- verifier, whether it may log in, whether it has any right beyond that (it must not),
-- and whether it is a member of $2 (deneva_system). No row: it does not exist yet.
SELECT rolpassword, rolcanlogin,
       rolsuper OR rolbypassrls OR rolinherit OR rolcreatedb OR rolcreaterole OR rolreplication AS too_much,
       pg_has_role(oid, $2, 'MEMBER') AS member
FROM pg_authid WHERE rolname = $1
