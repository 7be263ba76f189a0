-- Flow $1's form came back without a choice ($2 now): it waits for the form again.
UPDATE connect_flows SET status = 'consented', updated_at = $2 WHERE id = $1 AND status = 'storing'
