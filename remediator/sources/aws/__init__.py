"""What AWS services publish: CloudWatch alarms, EventBridge events, RDS events."""
