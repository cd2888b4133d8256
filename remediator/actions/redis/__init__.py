"""Actions on Redis (ElastiCache) caches named in settings."""
