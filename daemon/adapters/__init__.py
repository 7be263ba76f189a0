"""Ad-platform adapters: Google Ads, Meta, TikTok over HTTP; typed errors. Know nothing of MCP or actors."""
