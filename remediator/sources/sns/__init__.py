"""SNS HTTP(S) deliveries: envelopes, signing certificates, verification, confirmation."""
