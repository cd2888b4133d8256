"""The `remediator` command."""
