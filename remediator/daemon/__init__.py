"""The running daemon: the app, its processes and their lifetime."""
