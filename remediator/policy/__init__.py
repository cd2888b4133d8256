"""Policies: schema, loader, matching and planning."""
