"""Actions on PostgreSQL databases named in settings."""
