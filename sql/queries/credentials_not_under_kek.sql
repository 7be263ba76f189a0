-- deneva secrets rotate-kek, at the end: how many credentials are not under KEK $1.
SELECT count(*) FROM platform_credentials WHERE kek_id IS DISTINCT FROM $1 AND wrapped_key IS NOT NULL
