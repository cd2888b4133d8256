"""Actions on AWS services."""
