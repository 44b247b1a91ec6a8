"""Reports of suspected crimes built from decided cases: nothing before a person restricted
the content; the destination follows the country; NCMEC reports carry the preserved files
with the generative-AI annotation; every step is audited. Signal-level verdicts and harmless
test bytes only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from tests.fake_cybertipline import FakeCyberTipline
from tests.test_cases import verdict
from tests.test_decisions import claimed, removal
from waakhond.audit import AuditLog
from waakhond.cases.crime import CrimeReports, ReportRequest
from waakhond.cases.decisions import DecisionError, Decisions
from waakhond.cases.queues import Cases
from waakhond.core import Action
from waakhond.gateway.records import ContentToPreserve, DecisionLog, Requester, Stage
from waakhond.reports import CyberTiplineClient, ReportingPerson
from waakhond.store import Database

CHILD_SAFETY_REMOVAL = {
    "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "keywords": ("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",),
    "legal_ground": "18 U.S.C. 2252A", "territorial_scope": (),
    "facts": "The generator's output was withheld; a reviewer confirmed the verdict."}
WHY = "The gateway's verdict, confirmed by a reviewer."


@pytest.fixture(scope="module")
def tipline() -> Iterator[tuple[FakeCyberTipline, str]]:
    fake = FakeCyberTipline()
    with fake.running() as base_url:
        yield fake, base_url


def reports(db: Database, log: DecisionLog,
            tipline: tuple[FakeCyberTipline, str] | None = None) -> CrimeReports:
    client = None
    if tipline is not None:
        fake, base_url = tipline
        fake.reset()
        client = CyberTiplineClient(base_url, fake.username, fake.password, 5.0,
                                    reporter=ReportingPerson("safety@example.org"))
    return CrimeReports(db, log, tipline=client)


def automated_case(db: Database, log: DecisionLog, country: str | None) -> str:
    """A withheld generator output reported by the policy, its bytes preserved, claimed."""
    log.record(verdict(Action.BLOCK_AND_REPORT, ["SEXUAL_MINOR"]), Stage.OUTPUT, "req_1",
               Requester(None, "user-1", country),
               [ContentToPreserve(b"harmless test bytes", "image/png")])
    case = Cases(db).claim_next("alice")
    assert case is not None and case["queue"] == "child_safety"
    return case["reference"]


def test_a_us_case_is_filed_with_ncmec_with_its_file_marked_as_ai(db_url, tipline):
    db = Database(db_url)
    log = DecisionLog(db, Fernet.generate_key().decode())
    case = automated_case(db, log, "US")
    crime = reports(db, log, tipline)
    with pytest.raises(DecisionError, match="decides the case"):
        crime.build(case, "alice", ReportRequest(WHY))
    Decisions(db).decide(case, "alice", removal(**CHILD_SAFETY_REMOVAL))
    built = crime.build(case, "alice", ReportRequest(WHY, timezone="America/New_York"))
    assert built["destination"]["code"] == "ncmec" and built["status"] == "built"
    assert built["package"]["content"]["generative_ai"] is True
    submitted = crime.submit(built["reference"], "alice")
    assert submitted["status"] == "submitted" and submitted["external_id"]
    fake = tipline[0]
    stored = fake.reports[submitted["external_id"]]
    [arrived] = stored.files.values()
    assert stored.finished and arrived.data == b"harmless test bytes"
    assert arrived.annotations == {"generativeAi"}
    audit = AuditLog(db)
    assert audit.about(built["reference"], "crime_report.submit")
    evidence_id = built["package"]["content"]["evidence_ids"][0]
    assert log.evidence_accesses(evidence_id)[0]["by"] == "alice"


def test_a_failed_submission_is_kept_and_can_be_retried(db_url, tipline):
    db = Database(db_url)
    log = DecisionLog(db, Fernet.generate_key().decode())
    case = automated_case(db, log, "US")
    Decisions(db).decide(case, "alice", removal(**CHILD_SAFETY_REMOVAL))
    crime = reports(db, log, tipline)
    built = crime.build(case, "alice", ReportRequest(WHY))
    tipline[0].fail_next_upload = True
    with pytest.raises(DecisionError, match="submitted again"):
        crime.submit(built["reference"], "alice")
    failed = crime.get(built["reference"])
    assert failed["status"] == "failed" and failed["attempts"] == 1 and failed["last_error"]
    assert crime.submit(built["reference"], "alice")["status"] == "submitted"


@pytest.mark.parametrize(("country", "destination"), [("NL", "NL"), (None, "europol")])
def test_an_eu_case_is_exported_for_the_authority(db_url, country, destination):
    db = Database(db_url)
    case, _, _ = claimed(db)
    # A framed copy: the picture inside the border has its own PDQ, for the authority too.
    hashes = {"md5": "0" * 31 + "1", "pdq": "a" * 64, "pdq_inside_border": "b" * 64}
    Decisions(db).decide(case, "alice", removal(hashes=hashes))
    crime = reports(db, DecisionLog(db))
    built = crime.build(case, "alice", ReportRequest(WHY, country=country))
    assert built["package"]["content"]["hashes"] == hashes
    assert built["destination"]["code"] == destination
    with pytest.raises(DecisionError, match="export it"):
        crime.submit(built["reference"], "alice")
    exported = json.loads(crime.export(built["reference"], "bob"))
    assert exported["case_reference"] == case and exported["why_suspected"] == WHY
    assert AuditLog(db).about(built["reference"], "crime_report.export")[0]["actor"] == "bob"


def test_building_over_the_api(client):
    db = client.gateway.decisions.db
    case, _, _ = claimed(db, reviewer="key:1 (desk)")
    token = client.gateway.keys.create("desk", ["moderate"]).token
    headers = {"Authorization": f"Bearer {token}"}
    early = client.post(f"/v1/cases/{case}/crime-report", headers=headers,
                        json={"why_suspected": WHY})
    assert early.status_code == 409
    Decisions(db).decide(case, "key:1 (desk)", removal())
    built = client.post(f"/v1/cases/{case}/crime-report", headers=headers,
                        json={"why_suspected": WHY, "country": "BE"})
    assert built.status_code == 201, built.text
    reference = built.json()["reference"]
    exported = client.get(f"/v1/crime-reports/{reference}/export", headers=headers)
    assert exported.headers["content-type"] == "application/json"
    assert json.loads(exported.content)["destination"]["code"] == "BE"
    refused = client.post(f"/v1/crime-reports/{reference}/submit", headers=headers)
    assert refused.status_code == 409
    assert client.get("/v1/crime-reports/rpt_nothing", headers=headers).status_code == 404
