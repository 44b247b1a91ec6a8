"""Hash exchanges: fetch a hash list incrementally, resumable from a checkpoint, and send feedback.

An exchange hands out pages (``UpdateBatch``) of snapshot records: a later record for the same
(signal type, value) replaces whatever was said about it before, so applying batches in order
gives the current state, and applying a batch twice is harmless. Every batch carries the
checkpoint to resume *after* it; a caller stores it only once the batch is applied, so a crash
or a failed page costs at most a re-fetch, never a lost record.

``StopNCIIExchange`` wraps the client that ships with Meta's ``threatexchange`` package rather
than re-implementing StopNCII's HTTP: it brings the keys, the retries on 429/5xx and the record
parsing. What it lacks is a resumable cursor (its own ``fetch_hashes_iter`` restarts from the
start timestamp) and a typed error, which is what this module adds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import dacite
import requests
from threatexchange.exchanges.clients.stopncii.api import (
    FetchHashesResponse,
    StopNCIIAPI,
    StopNCIICaseStatus,
    StopNCIICSPFeedbackValue,
    StopNCIIEndpoint,
    StopNCIIHashRecord,
    StopNCIISignalType,
)

from waakhond.errors import WaakhondError
from waakhond.hashing.signal_types import SIGNAL_TYPES


class EntryStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"  # the person took the hash back: stop matching it
    DELETED = "deleted"


class Feedback(StrEnum):
    CONFIRM = "confirm"  # a match was reviewed and the content is what the list says
    DISPUTE = "dispute"  # a match was reviewed and the content is not
    PENDING = "pending"  # a match happened and awaits review


@dataclass(frozen=True)
class HashUpdate:
    signal_type: str  # "pdq" | "md5" | "sha256"
    value: str  # lower-case hex, validated
    status: EntryStatus
    metadata: dict[str, str]  # e.g. {"case_numbers": "c1,c2", "modified": "1700000000"}


@dataclass(frozen=True)
class UpdateBatch:
    updates: list[HashUpdate]
    checkpoint: str  # opaque JSON text; passing it back to fetch() resumes AFTER this batch
    skipped: int = 0  # records that could not be used (unknown signal type, malformed)


@runtime_checkable
class Exchange(Protocol):
    name: str

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]: ...

    def send_feedback(self, signal_type: str, value: str, feedback: Feedback) -> None: ...


class ExchangeError(WaakhondError):
    """A fetch or a feedback failed (network, HTTP status, unreadable payload or checkpoint)."""

    code = "exchange_error"


def normalise_hash(signal_type: str, value: object) -> str | None:
    """The value as lower-case hex if it is a well-formed hash of that type, else None."""
    kind = SIGNAL_TYPES.get(signal_type)
    if kind is None or not isinstance(value, str):
        return None
    try:
        return kind.validate(value)
    except ValueError:
        return None


# --- StopNCII ---------------------------------------------------------------------------------

_SIGNAL_TYPES = {StopNCIISignalType.ImagePDQ: "pdq", StopNCIISignalType.VideoMD5: "md5"}
_SIGNAL_TYPES_BACK = {ours: theirs for theirs, ours in _SIGNAL_TYPES.items()}
_STATUSES = {
    StopNCIICaseStatus.Received: EntryStatus.ACTIVE,  # submitted, not yet processed: still NCII
    StopNCIICaseStatus.Active: EntryStatus.ACTIVE,
    StopNCIICaseStatus.Withdrawn: EntryStatus.WITHDRAWN,
    StopNCIICaseStatus.Deleted: EntryStatus.DELETED,
}
_FEEDBACK = {
    Feedback.CONFIRM: StopNCIICSPFeedbackValue.Blocked,
    Feedback.DISPUTE: StopNCIICSPFeedbackValue.NotBlocked,
    Feedback.PENDING: StopNCIICSPFeedbackValue.PendingReview,
}


@dataclass(frozen=True)
class _Cursor:
    """Where to resume: the pass's start timestamp and, mid-pass, the next page's token."""

    start_timestamp: int
    next_page: str = ""

    def dump(self) -> str:
        return json.dumps({"start_timestamp": self.start_timestamp, "next_page": self.next_page})

    @classmethod
    def load(cls, checkpoint: str | None) -> _Cursor:
        if checkpoint is None:
            return cls(StopNCIIAPI.DEFAULT_START_TIME)
        try:
            data = json.loads(checkpoint)
            start, page = data["start_timestamp"], data.get("next_page") or ""
        except (ValueError, TypeError, KeyError) as error:
            raise ExchangeError(f"StopNCII checkpoint is unreadable: {checkpoint!r}") from error
        if type(start) is not int or not isinstance(page, str):
            raise ExchangeError(f"StopNCII checkpoint is unreadable: {checkpoint!r}")
        return cls(start, page)

    def after(self, page: FetchHashesResponse) -> _Cursor:
        """The cursor for the page after ``page``, which was fetched from this cursor."""
        if page.hasMoreRecords:
            if not page.nextPageToken or page.nextPageToken == self.next_page:
                # Following it would fetch the same page forever.
                raise ExchangeError("StopNCII FetchHashes failed: more records, no new page token")
            return _Cursor(self.start_timestamp, page.nextPageToken)
        # Pass complete: the server's own choice of where the next pass begins.
        return _Cursor(page.nextSetTimestamp)


class StopNCIIExchange:
    """StopNCII.org hashes (PDQ for images, MD5 for videos) submitted by the people depicted."""

    name = "stopncii"

    def __init__(
        self,
        base_url: str,
        subscription_key: str,
        fetch_key: str,
        feedback_key: str | None = None,
        page_size: int = 800,
    ) -> None:
        if not subscription_key or not fetch_key:
            raise ExchangeError("StopNCII needs a subscription key and a FetchHashes key")
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        extra_keys = {StopNCIIEndpoint.SubmitFeedback: feedback_key} if feedback_key else {}
        self._client = StopNCIIAPI(
            subscription_key, fetch_key, extra_keys, base_url_override=base_url.rstrip("/")
        )
        self._can_send_feedback = bool(feedback_key)
        self._page_size = page_size

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]:
        """One batch per page, from ``checkpoint`` (None: the whole list) to the end of the list.

        The checkpoint is read here, not on the first page, so a bad one fails at once.
        """
        return self._pages(_Cursor.load(checkpoint))

    def _pages(self, cursor: _Cursor) -> Iterator[UpdateBatch]:
        while True:
            page = self._fetch_page(cursor)
            cursor = cursor.after(page)
            updates = [update for record in page.hashRecords
                       if (update := stopncii_update(record)) is not None]
            skipped = len(page.hashRecords) - len(updates) + self._dropped_by_client(page)
            yield UpdateBatch(updates, cursor.dump(), skipped)
            if not cursor.next_page:
                return

    def _dropped_by_client(self, page: FetchHashesResponse) -> int:
        """Records the client threw away: it drops what it cannot parse (an unknown signal type
        or status, a missing field) with only a log line, so the page's count is how we see them.

        ``count`` is taken as the records in this page; a count above the page size cannot be
        that (it would be a total), and is then not used.
        """
        if page.count > self._page_size:
            return 0
        return max(page.count - len(page.hashRecords), 0)

    def _fetch_page(self, cursor: _Cursor) -> FetchHashesResponse:
        with _client_errors(StopNCIIEndpoint.FetchHashes):
            return self._client.fetch_hashes(
                page_size=self._page_size,
                start_timestamp=cursor.start_timestamp,
                next_page=cursor.next_page,
            )

    def send_feedback(self, signal_type: str, value: str, feedback: Feedback) -> None:
        """Tell StopNCII what review made of a match on one of its hashes."""
        if not self._can_send_feedback:
            raise ExchangeError("StopNCII feedback needs a SubmitFeedback key; none is configured")
        theirs = _SIGNAL_TYPES_BACK.get(signal_type)
        hex_value = normalise_hash(signal_type, value)
        if theirs is None or hex_value is None:
            raise ExchangeError(f"StopNCII has no {signal_type} hash like {value!r}")
        with _client_errors(StopNCIIEndpoint.SubmitFeedback):
            self._client.submit_feedback(theirs, hex_value, _FEEDBACK[Feedback(feedback)])


def stopncii_update(record: StopNCIIHashRecord) -> HashUpdate | None:
    """Our form of one record, or None when its type, status or value cannot be used."""
    signal_type = _SIGNAL_TYPES.get(record.signalType)
    status = _STATUSES.get(record.hashStatus)
    if signal_type is None or status is None:
        return None
    value = normalise_hash(signal_type, record.hashValue)
    if value is None:
        return None
    metadata = {
        "case_numbers": ",".join(sorted(record.caseNumbers)),
        "modified": str(record.lastModtimestamp),
    }
    return HashUpdate(signal_type, value, status, metadata)


@contextmanager
def _client_errors(endpoint: StopNCIIEndpoint) -> Iterator[None]:
    """Turns whatever the client lets escape into an ExchangeError naming the endpoint."""
    try:
        yield
    except _CLIENT_ERRORS as error:
        message = f"StopNCII {endpoint.value} failed: {_reason(error)}"
        raise ExchangeError(message) from error


# The client parses with dict.get and dacite, so an unexpected payload shape surfaces as
# AttributeError/TypeError/KeyError as well as DaciteError: all mean a bad response here.
# ValueError covers both a bad JSON body and the client's "no function key" error.
_CLIENT_ERRORS = (
    requests.RequestException,
    dacite.DaciteError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
)


def _reason(error: BaseException) -> str:
    """A short reason a person can act on, rather than urllib3's nested exception text."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return "the response is not JSON"
    if isinstance(error, requests.exceptions.RetryError):
        return "the server kept failing (HTTP 429/5xx) through every retry"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "could not connect"
    if isinstance(error, requests.RequestException):
        return type(error).__name__
    return f"unexpected response ({type(error).__name__}: {error})"
