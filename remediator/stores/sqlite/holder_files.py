"""Holder liveness for the SQLite store: one locked file per live process, beside the database.

The same rule as PostgreSQL's advisory-lock sessions: a holder is dead exactly when nobody holds
its lock. flock(2) locks belong to the open file and vanish when the process exits, however it
exits, so a replica killed with SIGKILL is seen dead at once and a live one never is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path


class HolderFiles:
    """Takes this holder's lock file and tells whether another holder's file is still locked."""

    def __init__(self, database: str) -> None:
        # An in-memory database lives in one process: there, every other holder is gone.
        self.folder = None if database == ":memory:" else Path(database + ".holders")
        self._fd: int | None = None

    def _path(self, holder: str) -> Path:
        assert self.folder is not None
        return self.folder / (hashlib.sha256(holder.encode()).hexdigest()[:40] + ".lock")

    def take(self, holder: str) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(holder), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another process holds the liveness lock of {holder}") from None
        self._fd = fd

    def release(self, holder: str) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._path(holder).unlink()
        os.close(self._fd)
        self._fd = None

    def alive(self, holder: str) -> bool:
        if self.folder is None:
            return False
        path = self._path(holder)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # a dead holder's file: nobody will lock it again
            return False
        finally:
            os.close(fd)

    def anyone_alive(self) -> bool:
        """True while any process has the store open (`store compact` must run alone)."""
        if self.folder is None or not self.folder.is_dir():
            return False
        for path in self.folder.glob("*.lock"):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
        return False
