"""Wiring of one process: settings, the Redis connection (or the embedded server), the broker,
the worker processes, and the status-store replication between them."""
