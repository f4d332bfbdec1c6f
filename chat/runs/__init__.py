"""The run service: one way to start, watch and finish a team run, used by every transport."""
