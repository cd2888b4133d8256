"""Sources: turn what senders deliver into `Alert` objects (DESIGN.md §2)."""
