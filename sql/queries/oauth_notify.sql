-- Tell every daemon's token cache (on commit) to forget the tokens of a grant.
SELECT pg_notify('deneva_oauth_grants', $1)
