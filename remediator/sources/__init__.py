"""Sources: turn requests from senders into alerts."""
