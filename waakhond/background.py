"""What outgoing deliveries share: how long to wait before the next try, and a thread that
runs a job every few seconds until it is stopped.

Webhooks, statements of reasons and crime reports are written to the database first (an
outbox) and sent from there, so a crash or an unreachable receiver loses nothing; these two
pieces decide when the next try happens.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off with full jitter (5 s, 10 s, 20 s ... capped at an hour), so
    receivers that come back are not hit by every sender at the same moment."""
    ceiling = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)
    return FIRST_RETRY / 2 + (ceiling - FIRST_RETRY / 2) * random.random()


class Periodic:
    """Runs ``job`` every ``interval_s`` seconds on a daemon thread. A failing job is logged
    and tried again next time: the outbox it reads from keeps the work."""

    def __init__(self, name: str, job: Callable[[], object], interval_s: float = 2.0) -> None:
        self.name = name
        self._job = job
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._job()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self.name, self._interval_s)
