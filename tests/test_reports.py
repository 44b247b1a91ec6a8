"""Reports of suspected crimes (DSA Art. 18): where they go, the downloadable package, and the
CyberTipline client against a local fake of NCMEC's API. Files are harmless test images."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.fake_cybertipline import FakeCyberTipline
from tests.images import jpeg, png
from waakhond.reports import (
    EUROPOL,
    LAW_ENFORCEMENT,
    NCMEC,
    CaseFacts,
    Channel,
    CyberTiplineClient,
    ReportError,
    ReportFile,
    ReportingPerson,
    ReportSubmissionError,
    UserLocator,
    build_package,
    choose_destination,
    export,
)

CHILD_SAFETY = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
REPORTER = ReportingPerson("reports@example.test", "Test", "Reporter")
HOSTILE = 'before </report><x>injected</x> & "quoted" \x00\x01\x1b after'


def facts(**changes: Any) -> CaseFacts:
    base = CaseFacts(
        case_reference="case_test_1",
        category=CHILD_SAFETY,
        keywords=("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",),
        labels=("SEXUAL_MINOR",),
        content_location="https://platform.example/media/test-item",
        occurred_at=datetime(2026, 7, 1, 10, 30, tzinfo=UTC),
        timezone="Europe/Amsterdam",
        why_suspected="placeholder summary of the reviewer",
        user=UserLocator("end-user-42", "203.0.113.7", "https://platform.example/u/42"),
        country="NL",
        hashes={"md5": "0" * 32, "sha256": "1" * 64, "pdq": "f" * 64},
        evidence_ids=(7, 8),
        generative_ai=True,
        reviewer="reviewer-1",
    )
    return dataclasses.replace(base, **changes)


def files() -> list[ReportFile]:
    return [ReportFile("test-image-1.png", png(), "image/png", 7),
            ReportFile("test-image-2.jpg", jpeg(color=(30, 90, 200)), "image/jpeg", 8)]


# --- where a report goes -----------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "default", "expected"), [
    ({"country": "US"}, False, "ncmec"),
    ({"country": "NL"}, True, "ncmec"),  # a platform that reports all child abuse to NCMEC
    ({"country": "NL"}, False, "NL"),
    ({"country": "FR", "labels": ("NCII_REAL_PERSON",), "keywords": ()}, True, "FR"),
    ({"country": None}, False, "europol"),
    ({"country": "GB"}, False, "europol"),  # outside the EU/EEA: no Member State concerned
    ({"country": "US", "labels": ("NCII_REAL_PERSON",), "keywords": ()}, True, "europol"),
])
def test_the_destination(changes, default, expected):
    assert choose_destination(facts(**changes), ncmec_by_default=default).code == expected


def test_child_abuse_is_recognised_by_keyword_too():
    assert facts(labels=(), keywords=("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",)).child_sexual_abuse
    assert not facts(labels=("ADULT_NUDITY",), keywords=()).child_sexual_abuse


def test_the_authority_names_are_configurable():
    assert choose_destination(facts()).name == LAW_ENFORCEMENT["NL"]
    chosen = choose_destination(facts(), authorities={"NL": "Test Unit"})
    assert (chosen.code, chosen.name) == ("NL", "Test Unit")
    assert chosen.channel is Channel.LAW_ENFORCEMENT


@pytest.mark.parametrize(("changes", "message"), [
    ({"occurred_at": datetime(2026, 7, 1, 10, 30)}, "time zone"),
    ({"timezone": "Mars/Base"}, "time zone"),
    ({"country": "nl"}, "alpha-2"),
    ({"country": "XX"}, "alpha-2"),
    ({"hashes": {"crc32": "00"}}, "hash kinds"),
    ({"user": UserLocator("u", "not-an-ip")}, "IP address"),
    ({"category": "CHILD_STUFF"}, "category"),
    ({"why_suspected": "  "}, "why_suspected"),
])
def test_facts_that_cannot_make_a_report(changes, message):
    with pytest.raises(ReportError, match=message):
        facts(**changes)


# --- the package -------------------------------------------------------------------------------


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_the_package_has_the_art18_fields():
    package = build_package(facts(), choose_destination(facts()))
    assert package["schema"] == "waakhond.crime-report/1"
    assert datetime.fromisoformat(package["created_at"]).tzinfo is not None
    assert package["occurred_at"] == "2026-07-01T12:30:00+02:00"  # local time, with its offset
    assert package["timezone"] == "Europe/Amsterdam"
    assert package["why_suspected"] == "placeholder summary of the reviewer"
    assert package["user"] == {"platform_user_id": "end-user-42", "ip_address": "203.0.113.7",
                               "account_url": "https://platform.example/u/42"}
    assert package["destination"] == {"code": "NL", "name": LAW_ENFORCEMENT["NL"],
                                      "channel": "law_enforcement"}
    assert "Art. 18" in package["legal_basis"]
    assert package["content"]["hashes"] == dict(facts().hashes)
    assert package["content"]["evidence_ids"] == [7, 8]
    assert package["content"]["generative_ai"] is True
    assert package["offence"]["child_sexual_abuse"] is True


def test_the_package_never_holds_file_bytes():
    package = build_package(facts(), NCMEC)
    assert all(isinstance(leaf, str | int | bool | None) for leaf in _leaves(package))
    assert len(export(package)) < 4096  # references and hashes only
    assert build_package(facts(), NCMEC)["legal_basis"].startswith("18 U.S.C. 2258A")


def test_the_export_round_trips_with_stable_bytes():
    created = datetime(2026, 7, 2, 9, 0, tzinfo=UTC)
    package = build_package(facts(country="IE"), choose_destination(facts(country="IE")),
                            created_at=created)
    data = export(package)
    assert json.loads(data) == package
    assert export(json.loads(data)) == data
    assert "Síochána".encode() in data  # UTF-8, not \\u escapes
    reordered = dict(reversed(list(package.items())))
    assert export(reordered) == data
    assert build_package(facts(), EUROPOL, created_at=created)["destination"]["code"] == "europol"


# --- the CyberTipline client against the fake --------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeCyberTipline, str]]:
    fake = FakeCyberTipline()
    with fake.running() as base_url:
        yield fake, base_url


@pytest.fixture
def fake(server: tuple[FakeCyberTipline, str]) -> FakeCyberTipline:
    server[0].reset()
    return server[0]


@pytest.fixture
def client(server: tuple[FakeCyberTipline, str]) -> Iterator[CyberTiplineClient]:
    fake, base_url = server
    with CyberTiplineClient(base_url, fake.username, fake.password, 5.0,
                            reporter=REPORTER) as made:
        yield made


@pytest.mark.parametrize("generative_ai", [True, False])
def test_a_full_submission(fake, client, generative_ai):
    sent = files()
    result = client.submit(facts(generative_ai=generative_ai, viewed_by_reviewer=True), sent)
    stored = fake.reports[result.report_id]
    assert stored.finished
    assert set(result.file_ids) == {7, 8}
    for item in sent:
        arrived = stored.files[result.file_ids[item.evidence_id]]
        assert (arrived.name, arrived.data) == (item.name, item.data)
        assert arrived.annotations == ({"generativeAi"} if generative_ai else set())
        assert arrived.details is not None
        assert arrived.details.findtext("fileViewedByEsp") == "true"
    report = stored.report
    assert report.findtext("incidentSummary/incidentDateTime") == "2026-07-01T12:30:00+02:00"
    assert report.findtext("personOrUserReported/espIdentifier") == "end-user-42"
    assert report.findtext("personOrUserReported/ipCaptureEvent/ipAddress") == "203.0.113.7"
    assert report.findtext("reporter/reportingPerson/email") == REPORTER.email
    assert ET.fromstring(result.report_xml).tag == "report"


def test_a_refused_password_is_a_clear_error(fake, server):
    bad = CyberTiplineClient(server[1], fake.username, "wrong", 5.0, reporter=REPORTER)
    with bad, pytest.raises(ReportSubmissionError, match="refused \\(HTTP 401\\)") as caught:
        bad.submit(facts(), files())
    assert (caught.value.step, caught.value.report_id) == ("submit", None)
    assert fake.reports == {}


def test_a_failed_upload_retracts_the_report(fake, client):
    fake.fail_next_upload = True
    with pytest.raises(ReportSubmissionError, match="was retracted") as caught:
        client.submit(facts(), files())
    error = caught.value
    assert error.step == "upload" and error.retracted and "responseCode 1000" in str(error)
    assert fake.retracted == [error.report_id]
    assert fake.reports == {}
    assert client.submit(facts(), files()).report_id in fake.reports  # a retry goes through


def test_hostile_text_stays_text(fake, client):
    hostile = facts(why_suspected=HOSTILE, user=UserLocator("</espIdentifier><x/>"))
    result = client.submit(hostile, files()[:1])
    report = fake.reports[result.report_id].report
    assert not list(report.iter("x"))
    assert report.findtext("personOrUserReported/espIdentifier") == "</espIdentifier><x/>"
    info = report.findtext("additionalInfo") or ""
    assert 'before </report><x>injected</x> & "quoted" \\x00\\x01\\x1b after' in info
    package = json.loads(export(build_package(hostile, NCMEC)))
    assert package["why_suspected"] == HOSTILE  # JSON carries it exactly


def test_the_fake_is_strict(fake, server):
    base_url = server[1]
    auth = (fake.username, fake.password)
    out_of_order = (b"<report><reporter><reportingPerson><email>a@example.test</email>"
                    b"</reportingPerson></reporter><incidentSummary><incidentType>t"
                    b"</incidentType><incidentDateTime>2026-07-01T10:00:00Z</incidentDateTime>"
                    b"</incidentSummary></report>")
    missing_email = b"<report><incidentSummary><incidentType>t</incidentType></incidentSummary>" \
                    b"<reporter><reportingPerson/></reporter></report>"
    for body in (out_of_order, missing_email, b"<report>"):
        answer = httpx.post(f"{base_url}/submit", content=body, auth=auth)
        assert answer.status_code == 400
        assert ET.fromstring(answer.content).findtext("responseCode") == "4100"


def test_a_finished_report_is_closed(fake, client, server):
    result = client.submit(facts(), files()[:1])
    auth = (fake.username, fake.password)
    late = httpx.post(f"{server[1]}/upload", data={"id": result.report_id},
                      files={"file": ("late.png", png(), "image/png")}, auth=auth)
    assert ET.fromstring(late.content).findtext("responseCode") == "5102"
    retract = httpx.post(f"{server[1]}/retract", data={"id": result.report_id}, auth=auth)
    assert ET.fromstring(retract.content).findtext("responseCode") == "5102"
    assert len(fake.reports[result.report_id].files) == 1
