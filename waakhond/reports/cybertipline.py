"""A client for NCMEC's CyberTipline Reporting API (https://report.cybertip.org/ispws/documentation).

The API takes XML over HTTPS with basic auth. One report is several calls:

    POST /submit    a <report> document          -> <reportResponse> with the reportId
    POST /upload    multipart: id, file          -> <reportResponse> with fileId and MD5 hash
    POST /fileinfo  a <fileDetails> document     -> <reportResponse>
    POST /finish    form: id                     -> <reportDoneResponse> listing the files
    POST /retract   form: id (only before finish) -> <reportResponse>

responseCode 0 is success; anything else is an error with a responseDescription. Base URLs:
https://report.cybertip.org/ispws (production), https://exttest.cybertip.org/ispws (testing).
Child elements follow the XSD's sequences, which NCMEC enforces (a wrong order is rejected).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from waakhond.reports.package import CaseFacts

INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"
SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
GENERATIVE_AI = "generativeAi"  # the fileAnnotations element for AI-made content
_XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
# What XML 1.0 cannot carry even escaped (C0 controls but tab/newline/CR, surrogates, FFFE/F).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportSubmissionError(RuntimeError):
    """A report did not reach NCMEC in full. Nothing is lost: the caller keeps the package and
    submits again later. ``retracted`` says whether a half-sent report was withdrawn."""

    def __init__(self, message: str, step: str, report_id: str | None = None,
                 retracted: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.report_id = report_id
        self.retracted = retracted


@dataclass(frozen=True)
class ReportingPerson:
    """Who at the platform files the report; NCMEC requires an e-mail address."""

    email: str
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True)
class ReportFile:
    name: str
    data: bytes
    mime_type: str
    evidence_id: int


@dataclass(frozen=True)
class SubmittedReport:
    report_id: str
    file_ids: dict[int, str]  # evidence id -> NCMEC's fileId
    report_xml: bytes  # exactly what was sent: 2258A(h) asks to preserve the report's contents


class CyberTiplineClient:
    """Files reports with NCMEC; use it with ``with`` (or call close()).

    ``timeout_s`` bounds each call, so a whole submission takes at most about
    (3 + 2 per file) times it.
    """

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0,
                 *, reporter: ReportingPerson) -> None:
        self._base = base_url.rstrip("/")
        self._reporter = reporter
        self._client = httpx.Client(auth=(username, password), timeout=timeout_s)

    def __enter__(self) -> CyberTiplineClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def submit(self, facts: CaseFacts, files: list[ReportFile]) -> SubmittedReport:
        """Opens a report, uploads and describes each file, and finishes it.

        A report left open would reach NCMEC without some of its files, and a later retry would
        file a second, overlapping report; so any failure after /submit retracts it first.
        """
        report_xml = report_document(facts, self._reporter)
        opened = self._call("submit", content=report_xml, headers=_XML_HEADERS)
        report_id = _text(opened, "reportId", "submit")
        with self._retract_on_failure(report_id):
            file_ids = {item.evidence_id: self._send_file(report_id, facts, item)
                        for item in files}
            self._call("finish", data={"id": report_id})
        return SubmittedReport(report_id, file_ids, report_xml)

    def _send_file(self, report_id: str, facts: CaseFacts, item: ReportFile) -> str:
        uploaded = self._call("upload", data={"id": report_id},
                              files={"file": (item.name, item.data, item.mime_type)})
        file_id = _text(uploaded, "fileId", "upload")
        received = uploaded.findtext("hash")
        if received and received.strip().lower() != _md5(item.data):
            raise ReportSubmissionError(f"NCMEC received a different file for evidence item "
                                        f"{item.evidence_id} (MD5 mismatch)", "upload")
        self._call("fileinfo", headers=_XML_HEADERS,
                   content=file_details_document(report_id, file_id, facts, item))
        return file_id

    @contextmanager
    def _retract_on_failure(self, report_id: str) -> Iterator[None]:
        try:
            yield
        except ReportSubmissionError as exc:
            retracted = self._retract(report_id)
            outcome = ("was retracted" if retracted else
                       "could not be retracted (NCMEC deletes an unfinished report after 24 "
                       "hours; if finish failed, check whether the report was finished)")
            raise ReportSubmissionError(f"{exc}; report {report_id} {outcome}",
                                        exc.step, report_id, retracted) from exc

    def _retract(self, report_id: str) -> bool:
        try:
            self._call("retract", data={"id": report_id})
        except ReportSubmissionError:
            return False
        return True

    def _call(self, step: str, **request: Any) -> ET.Element:
        """POSTs to the step's endpoint; returns the answer's root when responseCode is 0."""
        try:
            response = self._client.post(f"{self._base}/{step}", **request)
        except httpx.HTTPError as exc:
            raise ReportSubmissionError(f"CyberTipline {step}: no answer ({type(exc).__name__}: "
                                        f"{exc})", step) from exc
        if response.status_code == 401:
            raise ReportSubmissionError(f"CyberTipline {step}: the username or password was "
                                        f"refused (HTTP 401)", step)
        root = _parse_answer(response, step)
        code = (root.findtext("responseCode") or "").strip()
        if code != "0":
            description = root.findtext("responseDescription") or "no description"
            raise ReportSubmissionError(f"CyberTipline {step}: responseCode {code or 'missing'} "
                                        f"({description}), HTTP {response.status_code}", step)
        return root


def _parse_answer(response: httpx.Response, step: str) -> ET.Element:
    # The API never sends a DTD; refusing one keeps entity tricks out of the parser.
    if b"<!DOCTYPE" in response.content or b"<!ENTITY" in response.content:
        raise ReportSubmissionError(f"CyberTipline {step}: an answer with a DTD", step)
    try:
        return ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise ReportSubmissionError(f"CyberTipline {step}: HTTP {response.status_code} without "
                                    f"an XML answer: {response.text[:200]!r}", step) from exc


def _text(root: ET.Element, name: str, step: str) -> str:
    value = (root.findtext(name) or "").strip()
    if not value:
        raise ReportSubmissionError(f"CyberTipline {step}: the answer has no {name}", step)
    return value


def _md5(data: bytes) -> str:
    # NCMEC answers an upload with the file's MD5: a transfer check here, not a security one.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --- documents ---------------------------------------------------------------------------------


def xml_text(value: str) -> str:
    """User-controlled text as XML can carry it: ElementTree escapes markup, but characters
    XML 1.0 forbids would make the document unreadable, so they become visible \\xNN marks."""
    return _NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", value)


def _add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = xml_text(text)
    return child


def _root(tag: str) -> ET.Element:
    return ET.Element(tag, {"xmlns:xsi": XSI, "xsi:noNamespaceSchemaLocation": SCHEMA_LOCATION})


def _serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def report_document(facts: CaseFacts, reporter: ReportingPerson) -> bytes:
    """The /submit body. The incident time is local to the case's time zone, with its offset."""
    report = _root("report")
    summary = _add(report, "incidentSummary")
    _add(summary, "incidentType", INCIDENT_TYPE)
    _add(summary, "incidentDateTime", _local_time(facts))
    if facts.content_location.startswith(("http://", "https://")):
        _add(_add(_add(report, "internetDetails"), "webPageIncident"), "url",
             facts.content_location)
    _add_reporter(report, reporter)
    _add_reported_user(report, facts)
    _add(report, "additionalInfo", _additional_info(facts))
    return _serialise(report)


def _local_time(facts: CaseFacts) -> str:
    return facts.occurred_at.astimezone(ZoneInfo(facts.timezone)).isoformat(timespec="seconds")


def _add_reporter(report: ET.Element, reporter: ReportingPerson) -> None:
    person = _add(_add(report, "reporter"), "reportingPerson")
    if reporter.first_name:
        _add(person, "firstName", reporter.first_name)
    if reporter.last_name:
        _add(person, "lastName", reporter.last_name)
    _add(person, "email", reporter.email)


def _add_reported_user(report: ET.Element, facts: CaseFacts) -> None:
    user = _add(report, "personOrUserReported")
    _add(user, "espIdentifier", facts.user.platform_user_id)
    if facts.user.account_url:
        _add(user, "profileUrl", facts.user.account_url)
    if facts.user.ip_address:
        # The address came with the request that carried the content: an upload event.
        event = _add(user, "ipCaptureEvent")
        _add(event, "ipAddress", facts.user.ip_address)
        _add(event, "eventName", "Upload")
        _add(event, "dateTime", _local_time(facts))


def _additional_info(facts: CaseFacts) -> str:
    lines = [
        f"Case reference: {facts.case_reference}",
        f"Content location: {facts.content_location}",
        f"Labels: {', '.join(sorted(facts.labels)) or 'none'}",
        f"Made or edited by a generative AI tool: {'yes' if facts.generative_ai else 'no'}",
        f"Reviewed by: {facts.reviewer}",
        f"Why suspected: {facts.why_suspected}",
    ]
    return "\n".join(lines)


def file_details_document(report_id: str, file_id: str, facts: CaseFacts,
                          item: ReportFile) -> bytes:
    """The /fileinfo body for one uploaded file."""
    details = _root("fileDetails")
    _add(details, "reportId", report_id)
    _add(details, "fileId", file_id)
    _add(details, "originalFileName", item.name)
    _add(details, "fileViewedByEsp", "true" if facts.viewed_by_reviewer else "false")
    if facts.generative_ai:
        _add(_add(details, "fileAnnotations"), GENERATIVE_AI)
    _add(details, "originalFileHash", _md5(item.data)).set("hashType", "MD5")
    _add(details, "additionalInfo",
         f"Evidence item {item.evidence_id} of case {facts.case_reference}")
    return _serialise(details)
