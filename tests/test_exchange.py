"""StopNCIIExchange against a fake StopNCII server, through threatexchange's real client.

Nothing is mocked: the client does its own HTTP, retries and parsing against tests/fake_stopncii.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from tests.fake_stopncii import FakeStopNCII
from waakhond.hashing.exchange import (
    EntryStatus,
    Exchange,
    ExchangeError,
    Feedback,
    HashUpdate,
    StopNCIIExchange,
    UpdateBatch,
)


@pytest.fixture
def server() -> Iterator[FakeStopNCII]:
    with FakeStopNCII() as fake:
        yield fake


def exchange(
    server: FakeStopNCII, page_size: int = 3, **wrong_keys: str | None
) -> StopNCIIExchange:
    """An exchange with the server's keys, except those given."""
    keys = {
        "subscription_key": server.subscription_key,
        "fetch_key": server.fetch_key,
        "feedback_key": server.feedback_key,
        **wrong_keys,
    }
    return StopNCIIExchange(
        server.base_url,
        subscription_key=keys["subscription_key"] or "",
        fetch_key=keys["fetch_key"] or "",
        feedback_key=keys["feedback_key"],
        page_size=page_size,
    )


def pdq(n: int) -> str:
    return hashlib.sha256(f"pdq {n}".encode()).hexdigest()


def md5(n: int) -> str:
    return hashlib.md5(f"md5 {n}".encode()).hexdigest()


def values(batches: list[UpdateBatch]) -> list[str]:
    return [update.value for batch in batches for update in batch.updates]


def test_it_is_an_exchange(server: FakeStopNCII) -> None:
    assert isinstance(exchange(server), Exchange)
    assert exchange(server).name == "stopncii"


def test_a_full_fetch_walks_every_page_once(server: FakeStopNCII) -> None:
    hashes = [pdq(n) for n in range(10)]
    for value in hashes:
        server.put(value)

    batches = list(exchange(server, page_size=3).fetch(None))

    assert [len(batch.updates) for batch in batches] == [3, 3, 3, 1]
    assert values(batches) == hashes  # the list's order: oldest change first
    assert all(batch.skipped == 0 for batch in batches)
    assert len(server.fetches) == 4
    assert json.loads(batches[-1].checkpoint) == {"start_timestamp": server.clock, "next_page": ""}


def test_statuses_signal_types_and_metadata_are_mapped(server: FakeStopNCII) -> None:
    server.put(pdq(1), status="Received", cases=["c2", "c1"])
    server.put(pdq(2).upper(), status="Active")
    server.put(md5(3), signal_type="VideoMD5", status="Withdrawn")
    record = server.put(pdq(4), status="Deleted", cases={"c9": "Deleted", "c8": "Withdrawn"})

    updates = [u for batch in exchange(server, page_size=10).fetch(None) for u in batch.updates]

    assert [(u.signal_type, u.value, u.status) for u in updates] == [
        ("pdq", pdq(1), EntryStatus.ACTIVE),
        ("pdq", pdq(2), EntryStatus.ACTIVE),  # lower-cased
        ("md5", md5(3), EntryStatus.WITHDRAWN),
        ("pdq", pdq(4), EntryStatus.DELETED),
    ]
    assert updates[0].metadata["case_numbers"] == "c1,c2"
    assert updates[3] == HashUpdate(
        "pdq",
        pdq(4),
        EntryStatus.DELETED,
        {"case_numbers": "c8,c9", "modified": str(record["lastModtimestamp"])},
    )


def test_unusable_records_are_skipped_and_counted(server: FakeStopNCII) -> None:
    server.put(pdq(1))
    server.put(pdq(2), signal_type="VideoTMK")  # a type we do not match on
    server.put(pdq(3), signal_type="URL")
    server.put(pdq(4), status="Unknown")
    server.put(pdq(5)[:60])  # too short for PDQ
    server.put("z" * 32, signal_type="VideoMD5")  # not hex
    server.put(pdq(7), signal_type="AudioFingerprint")  # unknown to the client: it drops it
    server.put_raw({"signalType": "ImagePDQ", "hashValue": pdq(8)})  # no status: dropped too
    empty_cases = {"signalType": "ImagePDQ", "hashValue": pdq(9), "hashStatus": "Active"}
    server.put_raw({**empty_cases, "caseNumbers": [], "CSPFeedbacks": []})  # the client copes
    server.put(md5(10), signal_type="VideoMD5")

    batches = list(exchange(server, page_size=4).fetch(None))

    assert values(batches) == [pdq(1), pdq(9), md5(10)]
    assert [batch.skipped for batch in batches] == [3, 4, 0]
    assert batches[1].updates == []  # a page of nothing usable still moves the checkpoint


def test_a_failed_page_resumes_from_the_last_checkpoint_without_loss(
    server: FakeStopNCII,
) -> None:
    hashes = [pdq(n) for n in range(10)]
    for value in hashes:
        server.put(value)
    server.fail_page(3)

    received: list[UpdateBatch] = []
    with pytest.raises(ExchangeError, match=r"FetchHashes failed: HTTP 400"):
        for batch in exchange(server).fetch(None):
            received.append(batch)  # applied, then the checkpoint is kept
    assert values(received) == hashes[:6]

    server.recover()
    rest = list(exchange(server).fetch(received[-1].checkpoint))

    assert values(rest) == hashes[6:]
    assert sorted(values(received + rest)) == sorted(hashes)  # each exactly once


def test_a_later_fetch_returns_only_what_changed_since(server: FakeStopNCII) -> None:
    for n in range(5):
        server.put(pdq(n))
    first = list(exchange(server).fetch(None))
    server.put(pdq(2), status="Withdrawn")
    server.put(md5(9), signal_type="VideoMD5")

    later = list(exchange(server).fetch(first[-1].checkpoint))
    nothing_new = list(exchange(server).fetch(later[-1].checkpoint))

    assert [(u.value, u.status) for batch in later for u in batch.updates] == [
        (pdq(2), EntryStatus.WITHDRAWN),
        (md5(9), EntryStatus.ACTIVE),
    ]
    assert len(nothing_new) == 1 and nothing_new[0].updates == []
    assert nothing_new[0].checkpoint == later[-1].checkpoint


def test_a_record_changed_mid_fetch_is_not_lost(server: FakeStopNCII) -> None:
    for n in range(6):
        server.put(pdq(n))
    fetch = exchange(server).fetch(None)
    first = next(fetch)
    server.put(pdq(0), status="Withdrawn")  # already served; comes again, after the rest

    rest = list(fetch)

    assert values([first, *rest]) == [pdq(n) for n in (0, 1, 2, 3, 4, 5, 0)]
    assert rest[-1].updates[-1].status == EntryStatus.WITHDRAWN


def test_a_transient_server_error_is_retried_by_the_client(server: FakeStopNCII) -> None:
    for n in range(5):
        server.put(pdq(n))
    server.fail_page(2, status=500, times=1)

    batches = list(exchange(server).fetch(None))

    assert values(batches) == [pdq(n) for n in range(5)]
    assert len(server.fetches) == 3  # page 2 twice


def test_a_page_that_is_not_json_is_an_exchange_error(server: FakeStopNCII) -> None:
    server.put(pdq(1))
    server.fail_page(1, status=200, body=b"<html>maintenance</html>")

    with pytest.raises(ExchangeError, match="FetchHashes failed: the response is not JSON"):
        list(exchange(server).fetch(None))


def test_a_page_missing_fields_is_an_exchange_error(server: FakeStopNCII) -> None:
    server.fail_page(1, status=200, body=json.dumps({"hashRecords": []}).encode())

    with pytest.raises(ExchangeError, match="FetchHashes failed: unexpected response"):
        list(exchange(server).fetch(None))


@pytest.mark.parametrize("wrong", ["subscription_key", "fetch_key"])
def test_a_wrong_key_is_an_exchange_error(server: FakeStopNCII, wrong: str) -> None:
    server.put(pdq(1))
    with pytest.raises(ExchangeError, match=r"StopNCII FetchHashes failed: HTTP 403 Forbidden"):
        list(exchange(server, **{wrong: "not-the-key"}).fetch(None))


def test_an_unreadable_checkpoint_fails_before_any_request(server: FakeStopNCII) -> None:
    for checkpoint in ["", "{", '{"next_page": "x"}', '{"start_timestamp": "10"}']:
        with pytest.raises(ExchangeError, match="checkpoint is unreadable"):
            exchange(server).fetch(checkpoint)
    assert server.fetches == []


def test_feedback_arrives_as_stopncii_values(server: FakeStopNCII) -> None:
    sender = exchange(server)
    sender.send_feedback("pdq", pdq(1), Feedback.CONFIRM)
    sender.send_feedback("md5", md5(2).upper(), Feedback.DISPUTE)
    sender.send_feedback("pdq", pdq(3), Feedback.PENDING)

    assert server.feedback == [
        {"hashValue": pdq(1), "feedbackValue": "Blocked", "tags": []},
        {"hashValue": md5(2), "feedbackValue": "NotBlocked", "tags": []},
        {"hashValue": pdq(3), "feedbackValue": "PendingReview", "tags": []},
    ]


def test_feedback_without_a_key_is_an_exchange_error(server: FakeStopNCII) -> None:
    with pytest.raises(ExchangeError, match="needs a SubmitFeedback key"):
        exchange(server, feedback_key=None).send_feedback("pdq", pdq(1), Feedback.CONFIRM)
    assert server.feedback == []


def test_feedback_with_a_wrong_key_is_an_exchange_error(server: FakeStopNCII) -> None:
    with pytest.raises(ExchangeError, match="SubmitFeedback failed: HTTP 403"):
        exchange(server, feedback_key="nope").send_feedback("pdq", pdq(1), Feedback.CONFIRM)
    assert server.feedback == []


@pytest.mark.parametrize(
    ("signal_type", "value"), [("sha256", pdq(1)), ("pdq", md5(1))], ids=["sha256", "short-pdq"]
)
def test_feedback_on_a_hash_stopncii_cannot_have_is_refused(
    server: FakeStopNCII, signal_type: str, value: str
) -> None:
    with pytest.raises(ExchangeError, match=f"no {signal_type} hash"):
        exchange(server).send_feedback(signal_type, value, Feedback.CONFIRM)
    assert server.feedback == []
