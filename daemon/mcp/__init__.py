"""The Model Context Protocol: JSON-RPC, lifecycle, sessions, tools; transports live in deneva.http."""
