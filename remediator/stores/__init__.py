"""Stores: the durable record (SQLite, PostgreSQL) and coordination (in-process, Redis)."""
