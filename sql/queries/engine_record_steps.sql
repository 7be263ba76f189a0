-- Completed steps: run ids, step ids, outputs, completion times (a recorded step stays).
INSERT INTO engine_steps (run_id, step_id, output, completed_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[])
ON CONFLICT DO NOTHING
