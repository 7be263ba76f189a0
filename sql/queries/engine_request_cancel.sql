-- Ask the worker executing run $1 to stop at its next step.
UPDATE engine_runs SET cancel_requested = true WHERE id = $1
