"""MCP authorization: deneva as an OAuth 2.1 resource server and its built-in authorization server."""
