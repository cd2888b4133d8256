"""The production store: PostgreSQL, shared by every replica."""
