"""A local fake of StopNCII.org's hash API, so the real client can be tested over real HTTP.

It serves ``GET /v1/FetchHashes`` and ``POST /v1/SubmitFeedback`` on 127.0.0.1 (a free port)
from a background thread, in the shapes ``threatexchange``'s StopNCII client parses:

    with FakeStopNCII() as server:
        server.put("ab" * 32)                          # an ImagePDQ record, Active
        server.put("ab" * 32, status="Withdrawn")      # later: the same hash, withdrawn
        StopNCIIExchange(server.base_url, server.subscription_key, server.fetch_key)

The store holds one snapshot per (signal type, hash), as the real list does: a change replaces
the record and stamps it with the fake clock, which ticks once per change, so a change always
sorts after everything already served. Pages are cut by keyset (the last record's timestamp and
key), so a record changing mid-pass moves to the end rather than shifting the pages around it.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from threatexchange.exchanges.clients.stopncii.api import StopNCIICSPFeedbackValue

PREFIX = "/v1"
FEEDBACK_VALUES = {value.value for value in StopNCIICSPFeedbackValue}

Json = dict[str, Any]
SortKey = tuple[int, str, str]


@dataclass
class _Failure:
    page: int
    status: int
    body: bytes | None
    times: int | None  # None: until recover()


class FakeStopNCII:
    """The fake server; start it with ``with`` (or start()/stop())."""

    def __init__(
        self,
        subscription_key: str = "test-subscription-key",
        fetch_key: str = "test-fetch-key",
        feedback_key: str = "test-feedback-key",
        clock: int = 1_700_000_000,
    ) -> None:
        self.subscription_key = subscription_key
        self.fetch_key = fetch_key
        self.feedback_key = feedback_key
        self.clock = clock  # the next change's lastModtimestamp
        self.feedback: list[Json] = []  # every hashFeedbacks entry received, in order
        self.fetches: list[dict[str, str]] = []  # query of every FetchHashes call, retries too
        self._records: dict[tuple[str, str], Json] = {}
        self._failure: _Failure | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- the list ------------------------------------------------------------------------------

    def put(
        self,
        hash_value: str,
        signal_type: str = "ImagePDQ",
        status: str = "Active",
        cases: dict[str, str] | list[str] | None = None,
    ) -> Json:
        """Adds or replaces the record for (signal_type, hash_value); returns it as served.

        ``cases`` maps case numbers to their status (a list gives them all ``status``); by
        default the hash has one case of its own.
        """
        if cases is None:
            cases = [f"case-{hash_value[:8]}"]
        if isinstance(cases, list):
            cases = dict.fromkeys(cases, status)
        record = {
            "signalType": signal_type,
            "hashValue": hash_value,
            "hashStatus": status,
            "caseNumbers": cases,
            "CSPFeedbacks": [],
        }
        return self.put_raw(record)

    def put_raw(self, record: Json) -> Json:
        """Stores ``record`` as given, malformed values included, stamped with the clock."""
        with self._lock:
            stamped = {**record, "lastModtimestamp": self.clock}
            self.clock += 1
            key = (str(record.get("signalType")), str(record.get("hashValue")))
            self._records[key] = stamped
        return stamped

    def fail_page(
        self, page: int, status: int = 400, body: bytes | None = None, times: int | None = None
    ) -> None:
        """Makes page ``page`` of any pass (1 = the one without a page token) answer ``status``
        (with ``body``, default a JSON error) ``times`` times, or until recover().

        The client retries GETs on 429/5xx (backoff 0, 0.4, 0.8, 1.6 s), so a fetch that is to
        end in an error quickly needs another status; ``times=1`` with 500 shows a retry.
        """
        with self._lock:
            self._failure = _Failure(page, status, body, times)

    def recover(self) -> None:
        with self._lock:
            self._failure = None

    # --- running -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake StopNCII server is not running")
        return f"http://127.0.0.1:{self._server.server_port}{PREFIX}"

    def start(self) -> FakeStopNCII:
        self._server = server = _Server(self)
        # A short poll: stop() waits up to one poll interval, and every test stops a server.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeStopNCII:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- the endpoints (called from the handler threads) ---------------------------------------

    def key_for(self, endpoint: str) -> str:
        return self.fetch_key if endpoint == "FetchHashes" else self.feedback_key

    def fetch_hashes(self, query: dict[str, str]) -> tuple[int, Json | bytes]:
        with self._lock:
            self.fetches.append(query)
            try:
                start = int(query["startTimestamp"])
                page_size = int(query["pageSize"])
                page, after = _read_token(query.get("nextPageToken"), start)
            except (KeyError, ValueError) as error:
                return 400, {"error": f"bad request: {error}"}
            if (failure := self._take_failure(page)) is not None:
                return failure
            return 200, self._page(start, page_size, page, after)

    def _take_failure(self, page: int) -> tuple[int, Json | bytes] | None:
        failure = self._failure
        if failure is None or failure.page != page:
            return None
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                self._failure = None
        return failure.status, failure.body or {"error": f"page {page} is set to fail"}

    def _page(self, start: int, page_size: int, page: int, after: SortKey | None) -> Json:
        pending = sorted(
            (key, record)
            for record in self._records.values()
            if (key := _sort_key(record)) > (after or (start - 1, "", ""))
            and record["lastModtimestamp"] >= start
        )
        served, more = pending[:page_size], len(pending) > page_size
        token = _write_token(start, page + 1, served[-1][0]) if more else None
        return {
            "count": len(served),
            "nextPageToken": token,
            # Mid-pass this is only a hint; at the end, every stored change is older than it.
            "nextSetTimestamp": start if more else max(self.clock, start),
            "hasMoreRecords": more,
            "hashRecords": [record for _key, record in served],
        }

    def submit_feedback(self, body: bytes) -> tuple[int, Json]:
        try:
            payload = json.loads(body)
            entries = payload["hashFeedbacks"]
            valid = payload["count"] == len(entries) and all(map(_is_feedback, entries))
        except (ValueError, KeyError, TypeError) as error:
            return 400, {"error": f"bad request: {error}"}
        if not valid:
            return 400, {"error": "bad feedback entries"}
        with self._lock:
            self.feedback.extend(entries)
        return 200, {"count": len(entries)}


def _sort_key(record: Json) -> SortKey:
    return record["lastModtimestamp"], str(record.get("signalType")), str(record.get("hashValue"))


def _is_feedback(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("hashValue"), str)
        and entry.get("feedbackValue") in FEEDBACK_VALUES
        and isinstance(entry.get("tags"), list)
    )


def _write_token(start: int, page: int, after: SortKey) -> str:
    raw = json.dumps({"start": start, "page": page, "after": list(after)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _read_token(token: str | None, start: int) -> tuple[int, SortKey | None]:
    """The page number and the key to continue after; a token only holds for its own pass."""
    if not token:
        return 1, None
    try:
        data = json.loads(base64.urlsafe_b64decode(token))
        page, (mod, signal_type, value) = int(data["page"]), data["after"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"unreadable nextPageToken {token!r}") from error
    if data.get("start") != start:
        raise ValueError("nextPageToken belongs to another startTimestamp")
    return page, (int(mod), str(signal_type), str(value))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStopNCII) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        routes = {"/FetchHashes": "GET", "/SubmitFeedback": "POST"}
        endpoint = url.path.removeprefix(PREFIX)
        if not url.path.startswith(PREFIX) or endpoint not in routes:
            return self._send(404, {"error": f"no such endpoint {url.path}"})
        if routes[endpoint] != method:
            return self._send(405, {"error": f"{endpoint} takes {routes[endpoint]}"})
        fake = self.server.fake
        if (
            self.headers.get("x-functions-key") != fake.key_for(endpoint[1:])
            or self.headers.get("Ocp-Apim-Subscription-Key") != fake.subscription_key
        ):
            return self._send(403, {"error": "invalid key"})
        if method == "GET":
            query = {name: values[-1] for name, values in parse_qs(url.query).items()}
            return self._send(*fake.fetch_hashes(query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._send(*fake.submit_feedback(body))

    def _send(self, status: int, payload: Json | bytes) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures; a line per request would only bury them."""
