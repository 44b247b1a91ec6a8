"""A local fake of NCMEC's CyberTipline Reporting API, so the real client is tested over HTTP.

It serves /ispws/{submit,upload,fileinfo,finish,retract} on 127.0.0.1 with tests/gateway_server:

    fake = FakeCyberTipline()
    with fake.running() as base_url:
        CyberTiplineClient(base_url, fake.username, fake.password, reporter=...)
        fake.reports[report_id].files            # what arrived

Like the real service it wants basic auth (401 with an empty body otherwise), answers
<reportResponse>/<reportDoneResponse> with responseCode 0 on success, and reads XML strictly:
required elements must be there and children must follow the schema's order (NCMEC validates
against its XSD). The error codes are those NCMEC documents: 1000 server error, 4100 validation
failed, 5001 no such report, 5102 report already finished. The files are test bytes only.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.datastructures import UploadFile

from tests.gateway_server import serving

PREFIX = "/ispws"
SERVER_ERROR, VALIDATION_FAILED, NO_SUCH_REPORT, ALREADY_FINISHED = 1000, 4100, 5001, 5102
Next = Callable[[Request], Awaitable[Response]]

# The sequences the fake checks (a subset of NCMEC's XSD: what the client sends, in order).
ORDER = {
    "report": ["incidentSummary", "internetDetails", "lawEnforcement", "reporter",
               "personOrUserReported", "intendedRecipient", "victim", "additionalInfo"],
    "incidentSummary": ["incidentType", "platform", "escalateToHighPriority",
                        "reportAnnotations", "incidentDateTime", "incidentDateTimeDescription"],
    "reportingPerson": ["firstName", "lastName", "email"],
    "personOrUserReported": ["personOrUserReportedPerson", "espIdentifier", "espService",
                             "screenName", "displayName", "profileUrl", "ipCaptureEvent",
                             "additionalInfo"],
    "ipCaptureEvent": ["ipAddress", "eventName", "dateTime", "possibleProxy", "port"],
    "fileDetails": ["reportId", "fileId", "fileName", "originalFileName",
                    "uploadedToEspTimestamp", "locationOfFile", "fileViewedByEsp",
                    "exifViewedByEsp", "publiclyAvailable", "fileRelevance", "fileAnnotations",
                    "industryClassification", "originalFileHash", "ipCaptureEvent", "deviceId",
                    "details", "additionalInfo"],
}
REQUIRED = {
    "report": ["incidentSummary/incidentType", "incidentSummary/incidentDateTime",
               "reporter/reportingPerson/email"],
    "fileDetails": ["reportId", "fileId"],
}


class Refused(Exception):
    """A request the service refuses: the answer carries ``code`` and ``description``."""

    def __init__(self, code: int, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


@dataclass
class FakeFile:
    name: str
    data: bytes
    details: ET.Element | None = None  # the <fileDetails> sent to /fileinfo

    @property
    def annotations(self) -> set[str]:
        found = None if self.details is None else self.details.find("fileAnnotations")
        return set() if found is None else {child.tag for child in found}


@dataclass
class FakeReport:
    report: ET.Element  # the <report> sent to /submit
    files: dict[str, FakeFile] = field(default_factory=dict)
    finished: bool = False


class FakeCyberTipline:
    def __init__(self, username: str = "esp-test", password: str = "test-password") -> None:
        self.username = username
        self.password = password
        self.reports: dict[str, FakeReport] = {}
        self.retracted: list[str] = []
        self.fail_next_upload = False  # the next /upload answers HTTP 500, responseCode 1000
        self._next_id = 4564654
        self._lock = threading.Lock()
        self.app = self._build_app()

    @contextmanager
    def running(self) -> Iterator[str]:
        """Yields the base URL (``http://127.0.0.1:PORT/ispws``) while the server runs."""
        with serving(self.app) as url:
            yield url + PREFIX

    def reset(self) -> None:
        with self._lock:
            self.reports.clear()
            self.retracted.clear()
            self.fail_next_upload = False

    # --- the service (called under the lock) ---------------------------------------------------

    def submit(self, body: bytes) -> ET.Element:
        report = parse(body, "report")
        when = report.findtext("incidentSummary/incidentDateTime") or ""
        try:
            aware = datetime.fromisoformat(when).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise Refused(VALIDATION_FAILED, f"incidentDateTime {when!r} needs a UTC offset")
        report_id = str(self._next_id)
        self._next_id += 1
        self.reports[report_id] = FakeReport(report)
        return answer(reportId=report_id)

    def upload(self, report_id: str, name: str, data: bytes) -> ET.Element:
        report = self._open_report(report_id)
        if self.fail_next_upload:
            self.fail_next_upload = False
            raise Refused(SERVER_ERROR, "Server error (a test failure)", status=500)
        file_id = secrets.token_hex(16)
        report.files[file_id] = FakeFile(name, data)
        return answer(reportId=report_id, fileId=file_id, hash=hashlib.md5(data).hexdigest())

    def fileinfo(self, body: bytes) -> ET.Element:
        details = parse(body, "fileDetails")
        report_id, file_id = details.findtext("reportId", ""), details.findtext("fileId", "")
        files = self._open_report(report_id).files
        if file_id not in files:
            raise Refused(VALIDATION_FAILED, f"file {file_id!r} is not in report {report_id}")
        if files[file_id].details is not None:
            raise Refused(VALIDATION_FAILED, f"file {file_id} already has its details")
        files[file_id].details = details
        return answer(reportId=report_id)

    def finish(self, report_id: str) -> ET.Element:
        report = self._open_report(report_id)
        report.finished = True
        done = answer("reportDoneResponse", reportId=report_id)
        files = ET.SubElement(done, "files")
        for file_id in report.files:
            ET.SubElement(files, "fileId").text = file_id
        return done

    def retract(self, report_id: str) -> ET.Element:
        self._open_report(report_id)
        del self.reports[report_id]
        self.retracted.append(report_id)
        return answer(reportId=report_id)

    def _open_report(self, report_id: str) -> FakeReport:
        report = self.reports.get(report_id)
        if report is None:
            raise Refused(NO_SUCH_REPORT, f"Report {report_id!r} does not exist")
        if report.finished:
            raise Refused(ALREADY_FINISHED, f"Report {report_id} is already finished")
        return report

    # --- HTTP ----------------------------------------------------------------------------------

    def _respond(self, handler: Callable[..., ET.Element], *args: object) -> Response:
        with self._lock:
            try:
                root, status = handler(*args), 200
            except Refused as refused:
                root = answer(code=refused.code, description=refused.description)
                status = refused.status
        return Response(ET.tostring(root, encoding="utf-8", xml_declaration=True), status,
                        media_type="text/xml")

    def _authorised(self, credentials: HTTPBasicCredentials | None) -> bool:
        return credentials is not None and all((
            secrets.compare_digest(credentials.username.encode(), self.username.encode()),
            secrets.compare_digest(credentials.password.encode(), self.password.encode()),
        ))

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        basic = HTTPBasic(auto_error=False)

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Next) -> Response:
            if not self._authorised(await basic(request)):  # empty body, as NCMEC answers
                return Response(status_code=401, headers={"WWW-Authenticate": "Basic"})
            return await call_next(request)

        @app.post(f"{PREFIX}/submit")
        async def submit(request: Request) -> Response:
            return self._respond(self.submit, await request.body())

        @app.post(f"{PREFIX}/upload")
        async def upload(request: Request) -> Response:
            form = await request.form()
            item = form.get("file")
            if not isinstance(item, UploadFile):
                return self._respond(_refuse, "upload needs the fields id and file")
            data = await item.read()
            return self._respond(self.upload, str(form.get("id", "")), item.filename or "", data)

        @app.post(f"{PREFIX}/fileinfo")
        async def fileinfo(request: Request) -> Response:
            return self._respond(self.fileinfo, await request.body())

        @app.post(f"{PREFIX}/finish")
        async def finish(request: Request) -> Response:
            return self._respond(self.finish, str((await request.form()).get("id", "")))

        @app.post(f"{PREFIX}/retract")
        async def retract(request: Request) -> Response:
            return self._respond(self.retract, str((await request.form()).get("id", "")))

        return app


def _refuse(description: str) -> ET.Element:
    raise Refused(VALIDATION_FAILED, description)


def answer(tag: str = "reportResponse", code: int = 0, description: str = "Success",
           **fields: str) -> ET.Element:
    root = ET.Element(tag)
    ET.SubElement(root, "responseCode").text = str(code)
    if tag == "reportResponse":
        ET.SubElement(root, "responseDescription").text = description
    for name, value in fields.items():
        ET.SubElement(root, name).text = value
    return root


def parse(body: bytes, root_tag: str) -> ET.Element:
    """Reads a request document as strictly as the schema would: well formed, no DTD, the
    expected root, children in order, required elements present and not empty."""
    if b"<!DOCTYPE" in body:
        raise Refused(VALIDATION_FAILED, "a DTD is not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        raise Refused(VALIDATION_FAILED, f"not well-formed XML: {error}") from error
    if root.tag != root_tag:
        raise Refused(VALIDATION_FAILED, f"expected <{root_tag}>, got <{root.tag}>")
    _check_order(root)
    for path in REQUIRED[root_tag]:
        if not (root.findtext(path) or "").strip():
            raise Refused(VALIDATION_FAILED, f"<{root_tag}> needs {path}")
    return root


def _check_order(element: ET.Element) -> None:
    sequence = ORDER.get(element.tag)
    if sequence is not None:
        names = [child.tag for child in element]
        unknown = [name for name in names if name not in sequence]
        if unknown:
            raise Refused(VALIDATION_FAILED, f"<{element.tag}> has unknown {unknown}")
        positions = [sequence.index(name) for name in names]
        if positions != sorted(positions):
            raise Refused(VALIDATION_FAILED, f"<{element.tag}> children out of order: {names}")
    for child in element:
        _check_order(child)
