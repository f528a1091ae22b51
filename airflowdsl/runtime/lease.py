"""One writer per cache key at a time, across processes: ``locks/<key[:2]>/<key>.lock``
under a local store root, held with ``fcntl.flock``.

The kernel drops a flock when its process dies (SIGKILL included), so a lease can never
outlive its holder: stale-lease recovery needs no timeout. The holder's pid, host and
start time are written into the file for messages. A lock file is only unlinked while
locked (``gc``), and a taker checks after locking that the path still names the file it
locked, so two processes never both hold a key. Object-store roots have no lock: two
runs may compute one key, the last manifest wins (still correct, only wasted work).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType

POLL_S = 0.05

#: A wait for another holder is reported (``on_wait``) after this long, then every
#: ``WAIT_REPEAT_S``. The wait itself is bounded by the holder: the kernel drops its lock
#: when it dies, and its own step runs under the run's limits (stall watchdog, timeouts).
WAIT_NOTE_S = 5.0
WAIT_REPEAT_S = 60.0


class Lease:
    """``with Lease(path):`` holds the lock file at ``path`` (None: no locking).
    ``on_wait(waited_s, holder)`` hears of a wait for another holder (``WAIT_NOTE_S``)."""

    def __init__(self, path: str | None, *, wait: bool = True,
                 on_wait: Callable[[float, dict[str, object] | None], None] | None = None
                 ) -> None:
        self.path, self.wait, self.on_wait = path, wait, on_wait
        self.fd: int | None = None
        self.waited_s = 0.0

    def acquire(self) -> bool:
        """Take the lease (waiting while another process holds it, if ``wait``)."""
        if self.path is None:
            return True
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        start = time.monotonic()
        note_at = WAIT_NOTE_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not self.wait:
                    return False
                if self.on_wait is not None and (waited := time.monotonic() - start) >= note_at:
                    self.on_wait(waited, holder(self.path))
                    note_at = waited + WAIT_REPEAT_S
                time.sleep(POLL_S)
                continue
            if _same_file(fd, self.path):
                break
            os.close(fd)  # unlinked (gc) between open and lock: take the new file
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.time()}).encode())
        self.fd, self.waited_s = fd, time.monotonic() - start
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def holder(path: str) -> dict[str, object] | None:
    """Who holds (or last held) the lock file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
