"""A platform's webhook endpoint, for the tests: a real HTTP server on loopback that checks
every signature with ``verify_signature`` and applies each event once however often it comes
(the idempotent receiving side that waakhond.webhooks.delivery describes). It can be told to
fail, to lose its answer after applying an event, or to hang past the sender's time-out."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from waakhond.webhooks import verify_signature


class Fault(Enum):
    FAIL = "answer 500 without applying"
    LOSE_ANSWER = "apply, then answer 500, as if the 2xx was lost on its way back"
    HANG = "wait hang_s, then apply and answer 200, long after the sender gave up"


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.url = ""
        self.applied: list[dict[str, Any]] = []  # each event once, in the order applied
        self.received: list[str] = []  # the event id of every signed request, repeats too
        self.rejected = 0  # requests whose signature did not check out
        self.hang_s = 0.0
        self._faults: deque[Fault] = deque()
        self._handled = 0
        self._changed = threading.Condition()

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Treat the next ``times`` signed requests this way."""
        with self._changed:
            self._faults.extend([fault] * times)

    def handle(self, timestamp: str, signature: str, body: bytes) -> int:
        """The HTTP status to answer."""
        if not verify_signature(self.secret, timestamp, body, signature):
            with self._changed:
                self.rejected += 1
            return 401
        event = json.loads(body)
        with self._changed:
            self.received.append(event["id"])
            fault = self._faults.popleft() if self._faults else None
        if fault is Fault.HANG:
            time.sleep(self.hang_s)
        if fault is not Fault.FAIL:
            self._apply(event)
        with self._changed:
            self._handled += 1
            self._changed.notify_all()
        return 500 if fault in (Fault.FAIL, Fault.LOSE_ANSWER) else 200

    def _apply(self, event: dict[str, Any]) -> None:
        # Check and record under one lock: two copies arriving together are applied once.
        with self._changed:
            if event["id"] not in {applied["id"] for applied in self.applied}:
                self.applied.append(event)

    def wait_until_handled(self, requests: int, timeout_s: float = 5) -> None:
        """Until ``requests`` signed requests were handled, hung ones included."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._handled >= requests, timeout_s):
                raise TimeoutError(f"{self._handled} of {requests} requests handled")


@contextmanager
def receiving(secret: str) -> Iterator[Receiver]:
    """A receiver listening on a free loopback port (``receiver.url``) for the block."""
    receiver = Receiver(secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    # A short poll interval: shutdown() waits for the loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/waakhond-events"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = receiver.handle(self.headers.get("X-Waakhond-Timestamp", ""),
                                     self.headers.get("X-Waakhond-Signature", ""), body)
            # After a hang the sender has closed the connection: nobody hears the answer.
            with suppress(ConnectionError):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what was received."""

    return Handler
