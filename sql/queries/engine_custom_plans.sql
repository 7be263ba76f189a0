-- Batch statements take arrays of any length: a cached generic plan (which assumes ten
-- array elements) turned the batched completion quadratic, so they plan each time.
SET LOCAL plan_cache_mode = force_custom_plan
