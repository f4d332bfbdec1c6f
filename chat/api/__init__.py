"""The HTTP transport: the AgentOS-compatible JSON/SSE API over the run service, and the token routes."""
