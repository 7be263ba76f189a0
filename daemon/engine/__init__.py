"""The durable job engine: functions, steps, runs, scheduling. Knows nothing of ads."""
