"""deneva: an MCP server for ad-platform data with its own durable job engine."""

__version__ = "0.1.0"
