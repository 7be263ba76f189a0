"""Report analyses: pure functions from platform data to compact results an LLM can act on."""
