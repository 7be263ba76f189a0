-- Wake the dispatchers of every replica ($1: the channel).
SELECT pg_notify($1, '')
