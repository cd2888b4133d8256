"""Sources: turn what senders deliver (Alertmanager, SNS: CloudWatch, EventBridge, RDS) into alerts."""
