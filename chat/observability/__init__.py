"""What an operator sees of the server: request ids, run logs, Prometheus metrics, the event loop.

A ground-floor package: it imports nothing from the rest of `chat`, so the run service and the
transports can call its hooks. Importing this package imports nothing heavy (the settings import
`logs` from it before Django is set up).
"""
