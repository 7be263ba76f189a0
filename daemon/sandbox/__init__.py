"""Loopback servers that speak the Google Ads, Meta and TikTok APIs, for tests, demo and benchmarks."""
