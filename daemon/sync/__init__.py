"""Ad-platform sync: cadences and TTLs, the metric cache and its read-or-fetch."""
