-- One more run in a rate-limit window; returns the window's count.
INSERT INTO engine_rate_windows (key, window_start, count) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start) DO UPDATE SET count = engine_rate_windows.count + 1
RETURNING count
