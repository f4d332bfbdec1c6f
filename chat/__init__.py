"""The product: the run service, its transports and the agno seam (docs/ARCHITECTURE.md)."""
