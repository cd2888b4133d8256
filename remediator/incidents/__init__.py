"""Incidents: their life, statistics, postmortem drafts and reports."""
