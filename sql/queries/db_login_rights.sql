-- What the pool's login could do beyond its roles: the roles it can act as that are
-- superusers or bypass row-level security, and the owners of row-level-secured tables it
-- can act as (an owner can switch the policies off). Both empty for a proper login.
SELECT session_user AS login,
       coalesce((SELECT array_agg(r.rolname::text ORDER BY r.rolname) FROM pg_roles r
                 WHERE (r.rolsuper OR r.rolbypassrls) AND pg_has_role(session_user, r.oid, 'MEMBER')),
                '{}') AS bypassing,
       coalesce((SELECT array_agg(DISTINCT pg_get_userbyid(c.relowner)::text) FROM pg_class c
                 WHERE c.relrowsecurity AND c.relnamespace = current_schema()::regnamespace
                   AND pg_has_role(session_user, c.relowner, 'MEMBER')),
                '{}') AS owners
