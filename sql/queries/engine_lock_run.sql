-- One run's status, its row locked for the rest of the transaction.
SELECT status FROM engine_runs WHERE id = $1 FOR UPDATE
