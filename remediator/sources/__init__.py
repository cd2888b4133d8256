"""Alert sources: authenticate, verify and parse what senders POST to the webhooks."""
