"""The engine: a request's life from recorded alert to audit record, and what follows it."""
