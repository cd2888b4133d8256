"""AWS access: one aiobotocore session, cached clients, classified errors."""
