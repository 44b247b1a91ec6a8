"""A local fake of the Commission's DSA Transparency Database API that validates as the real one
does, so statements and the submitter are tested against its rules over real HTTP.

It follows github.com/digital-services-act/transparency-database (read June 2026): the field
rules of app/Http/Requests/StatementStoreRequest.php and app/Services/GroupedSubmissionsService.php
(the same for one statement and for a batch), and the answers of the v1 statement controllers:

- ``POST /api/v1/statement`` (one) and ``POST /api/v1/statements`` (``{"statements": [...]}``,
  1 to 100), with ``Authorization: Bearer <token>`` (401 ``{"message": "Unauthenticated."}``);
- errors come as JSON only when the request accepts JSON; otherwise Laravel redirects (302);
- a batch with any invalid statement: 422 ``{"errors": {"statement_<i>": {field: [message]}}}``
  (no ``message``) and nothing stored; one statement: 422 ``{"message", "errors": {field: ...}}``;
- then a puid repeated within the call, or stored before: 422 with ``errors.existing_puids``
  (one statement: ``existing.puid``), nothing stored;
- otherwise 201 with what was stored (``{"statements": [...]}`` for a batch).

It imports nothing from ``waakhond.transparency``: it stands in for the Commission, and checking
our statements against our own rules would prove nothing.

    fake = FakeTransparencyDatabase()
    with fake.serve() as base_url: ...        # also fake.base_url
    fake.fail_next(2, status=429)   # the next two calls fail so, storing nothing
    fake.lose_next_created()        # the next good call stores, but answers 500
    fake.delay_s = 0.5              # answers come this late (after storing)
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tests.gateway_server import serving

Json = dict[str, Any]
Errors = dict[str, list[str]]
Answer = tuple[int, Json]

ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
GROUNDS = {ILLEGAL, INCOMPATIBLE}
VISIBILITIES = {f"DECISION_VISIBILITY_{name}" for name in (
    "CONTENT_REMOVED", "CONTENT_DISABLED", "CONTENT_DEMOTED", "CONTENT_AGE_RESTRICTED",
    "CONTENT_INTERACTION_RESTRICTED", "CONTENT_LABELLED", "OTHER")}
MONETARIES = {f"DECISION_MONETARY_{name}" for name in ("SUSPENSION", "TERMINATION", "OTHER")}
PROVISIONS = {f"DECISION_PROVISION_{name}" for name in (
    "PARTIAL_SUSPENSION", "TOTAL_SUSPENSION", "PARTIAL_TERMINATION", "TOTAL_TERMINATION")}
ACCOUNTS = {"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"}
ACCOUNT_TYPES = {"ACCOUNT_TYPE_BUSINESS", "ACCOUNT_TYPE_PRIVATE"}
CONTENT_TYPES = {f"CONTENT_TYPE_{name}" for name in (
    "APP", "AUDIO", "IMAGE", "PRODUCT", "SYNTHETIC_MEDIA", "TEXT", "VIDEO", "OTHER")}
CATEGORIES = {f"STATEMENT_CATEGORY_{name}" for name in (
    "ANIMAL_WELFARE", "CONSUMER_INFORMATION", "CYBER_VIOLENCE", "CYBER_VIOLENCE_AGAINST_WOMEN",
    "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS", "ILLEGAL_OR_HARMFUL_SPEECH",
    "INTELLECTUAL_PROPERTY_INFRINGEMENTS", "NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
    "NOT_SPECIFIED_NOTICE", "OTHER_VIOLATION_TC", "PROTECTION_OF_MINORS",
    "RISK_FOR_PUBLIC_SECURITY", "SCAMS_AND_FRAUD", "SELF_HARM",
    "UNSAFE_AND_PROHIBITED_PRODUCTS", "VIOLENCE")}
# Statement::KEYWORDS; KEYWORD_DANGEROUS_TOYS is a constant there but not in this list.
KEYWORDS = {f"KEYWORD_{name}" for name in (
    "ADULT_SEXUAL_MATERIAL", "AGE_SPECIFIC_RESTRICTIONS", "AGE_SPECIFIC_RESTRICTIONS_MINORS",
    "ANIMAL_HARM", "BIOMETRIC_DATA_BREACH", "BULLYING_AGAINST_GIRLS", "CHILD_SEXUAL_ABUSE_MATERIAL",
    "CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE", "CONTENT_PROMOTING_EATING_DISORDERS",
    "COORDINATED_HARM", "COPYRIGHT_INFRINGEMENT", "CYBER_BULLYING_INTIMIDATION", "CYBER_HARASSMENT",
    "CYBER_HARASSMENT_AGAINST_WOMEN", "CYBER_INCITEMENT", "CYBER_STALKING",
    "CYBER_STALKING_AGAINST_WOMEN", "DATA_FALSIFICATION", "DEFAMATION", "DESIGN_INFRINGEMENT",
    "DISCRIMINATION", "FEMALE_GENDERED_DISINFORMATION", "GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
    "GEOGRAPHICAL_REQUIREMENTS", "GOODS_SERVICES_NOT_PERMITTED",
    "GROOMING_SEXUAL_ENTICEMENT_MINORS", "HATE_SPEECH", "HIDDEN_ADVERTISEMENT",
    "HUMAN_EXPLOITATION", "HUMAN_TRAFFICKING", "ILLEGAL_ORGANIZATIONS",
    "IMPERSONATION_ACCOUNT_HIJACKING", "INAUTHENTIC_ACCOUNTS", "INAUTHENTIC_LISTINGS",
    "INAUTHENTIC_USER_REVIEWS", "INCITEMENT_AGAINST_WOMEN", "INCITEMENT_VIOLENCE_HATRED",
    "INSUFFICIENT_INFORMATION_ON_TRADERS", "LANGUAGE_REQUIREMENTS", "MISINFORMATION_DISINFORMATION",
    "MISLEADING_INFO_CONSUMER_RIGHTS", "MISLEADING_INFO_GOODS_SERVICES",
    "MISSING_PROCESSING_GROUND", "NON_CONSENSUAL_IMAGE_SHARING",
    "NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN", "NON_CONSENSUAL_MATERIAL_DEEPFAKE",
    "NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN", "NONCOMPLIANCE_PRICING", "NUDITY",
    "PATENT_INFRINGEMENT", "PHISHING", "PROHIBITED_PRODUCTS", "PYRAMID_SCHEMES",
    "RIGHT_TO_BE_FORGOTTEN", "RISK_ENVIRONMENTAL_DAMAGE", "RISK_PUBLIC_HEALTH", "SELF_MUTILATION",
    "STALKING", "SUICIDE", "TERRORIST_CONTENT", "TRADE_SECRET_INFRINGEMENT",
    "TRADEMARK_INFRINGEMENT", "TRAFFICKING_WOMEN_GIRLS", "UNLAWFUL_SALE_ANIMALS",
    "UNSAFE_CHALLENGES", "UNSAFE_PRODUCTS", "VIOLATION_EU_LAW", "VIOLATION_NATIONAL_LAW", "OTHER",
)}
SOURCE_TYPES = {"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION",
                "SOURCE_VOLUNTARY"}
AUTOMATED_DECISIONS = {"AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY",
                       "AUTOMATED_DECISION_NOT_AUTOMATED"}
YES_NO = {"Yes", "No"}
COUNTRIES = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
}
# EuropeanLanguagesService::ALL_LANGUAGES: ISO 639-1, upper case.
LANGUAGES = {
    "AA", "AB", "AE", "AF", "AK", "AM", "AN", "AR", "AS", "AV", "AY", "AZ", "BA", "BE", "BG", "BH",
    "BI", "BM", "BN", "BO", "BR", "BS", "CA", "CE", "CH", "CO", "CR", "CS", "CU", "CV", "CY", "DA",
    "DE", "DV", "DZ", "EE", "EL", "EN", "EO", "ES", "ET", "EU", "FA", "FF", "FI", "FJ", "FO", "FR",
    "FY", "GA", "GD", "GL", "GN", "GU", "GV", "HA", "HE", "HI", "HO", "HR", "HT", "HU", "HY", "HZ",
    "IA", "ID", "IE", "IG", "II", "IK", "IO", "IS", "IT", "IU", "JA", "JV", "KA", "KG", "KI", "KJ",
    "KK", "KL", "KM", "KN", "KO", "KR", "KS", "KU", "KV", "KW", "KY", "LA", "LB", "LG", "LI", "LN",
    "LO", "LT", "LU", "LV", "MG", "MH", "MI", "MK", "ML", "MN", "MR", "MS", "MT", "MY", "NA", "NB",
    "ND", "NE", "NG", "NL", "NN", "NO", "NR", "NV", "NY", "OC", "OJ", "OM", "OR", "OS", "PA", "PI",
    "PL", "PS", "PT", "QU", "RM", "RN", "RO", "RU", "RW", "SA", "SC", "SD", "SE", "SG", "SI", "SK",
    "SL", "SM", "SN", "SO", "SQ", "SR", "SS", "ST", "SU", "SV", "SW", "TA", "TE", "TG", "TH", "TI",
    "TK", "TL", "TN", "TO", "TR", "TS", "TT", "TW", "TY", "UG", "UK", "UR", "UZ", "VE", "VI", "VO",
    "WA", "WO", "XH", "YI", "YO", "ZA", "ZH", "ZU",
}

RESTRICTIONS = {"decision_visibility": VISIBILITIES, "decision_monetary": MONETARIES,
                "decision_provision": PROVISIONS, "decision_account": ACCOUNTS}
GROUND_FIELDS = {
    ILLEGAL: (("illegal_content_legal_ground", 500), ("illegal_content_explanation", 2000)),
    INCOMPATIBLE: (("incompatible_content_ground", 500),
                   ("incompatible_content_explanation", 2000)),
}
PUID = re.compile(r"[a-zA-Z0-9_-]+")
EAN_13 = re.compile(r"[0-9]{13}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LAST_DAY = "2038-01-01"
NOT_UNIQUE_IN_CALL = "The platform identifier(s) are not all unique within this call."
NOT_UNIQUE = "The identifier given is not unique within this platform."


def _label(key: str) -> str:
    return key.replace("_", " ")


class _Check:
    """One statement's validation: Laravel-style messages per field. Laravel trims strings and
    turns empty ones into null before validating; "required" also refuses an empty list."""

    def __init__(self, statement: Json) -> None:
        self.statement = statement
        self.errors: Errors = {}

    def fail(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def given(self, key: str) -> bool:
        value = self.statement.get(key)
        return not (value is None or value == [] or (isinstance(value, str) and not value.strip()))

    def required(self, key: str, when: str = "") -> bool:
        if self.given(key):
            return True
        self.fail(key, f"The {_label(key)} field is required{when}.")
        return False

    def one_of(self, key: str, allowed: set[str], nullable: bool = True) -> None:
        value = self.statement.get(key)
        if key in self.statement and not (value is None and nullable) and (
                not isinstance(value, str) or value not in allowed):
            self.fail(key, f"The selected {_label(key)} is invalid.")

    def list_of(self, key: str, allowed: set[str], nullable: bool = True) -> None:
        value = self.statement.get(key)
        if key not in self.statement or (value is None and nullable):
            return
        if not isinstance(value, list):
            self.fail(key, f"The {_label(key)} field must be an array.")
        elif any(not isinstance(item, str) or item not in allowed for item in value):
            self.fail(key, f"The selected {_label(key)} is invalid.")

    def max_length(self, key: str, limit: int) -> None:
        value = self.statement.get(key)
        if isinstance(value, str | int) and len(str(value).strip()) > limit:
            self.fail(key, f"The {_label(key)} field must not be greater than {limit} characters.")

    def text(self, key: str, limit: int, required: bool, when: str = "") -> None:
        if (self.required(key, when) if required else self.given(key)):
            self.max_length(key, limit)

    def day(self, key: str, name: str, earliest: str | None, required: bool) -> None:
        if not (self.required(key) if required else self.given(key)):
            return
        value = self.statement[key]
        if not _is_day(value):
            self.fail(key, f"The {name} does not match the format YYYY-MM-DD.")
            return
        if earliest and value < earliest:
            self.fail(key, f"The {_label(key)} field must be a date after or equal to {earliest}.")
        if value > LAST_DAY:
            self.fail(key, f"The {_label(key)} field must be a date before or equal to {LAST_DAY}.")


def _is_day(value: Any) -> bool:
    if not isinstance(value, str) or not DAY.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:  # 2024-02-30: PHP rolls it over, and the round trip then fails
        return False
    return True


def validate_statement(statement: Any) -> Errors:
    """The field errors of one statement, as the real API words them; empty when it is valid."""
    if not isinstance(statement, dict):
        return {"statement": ["The statement must be an object."]}
    check = _Check(statement)
    for rules in (_restrictions, _grounds, _classification, _dates, _source, _identity):
        rules(check)
    return check.errors


def _restrictions(check: _Check) -> None:
    if not any(check.given(key) for key in RESTRICTIONS):
        for key in RESTRICTIONS:
            others = " / ".join(_label(other) for other in RESTRICTIONS if other != key)
            check.fail(key, f"The {_label(key)} field is required when none of {others} "
                            "are present.")
    check.list_of("decision_visibility", VISIBILITIES)
    for key in ("decision_monetary", "decision_provision", "decision_account"):
        check.one_of(key, RESTRICTIONS[key])
    check.one_of("account_type", ACCOUNT_TYPES)
    visibility = check.statement.get("decision_visibility")
    if isinstance(visibility, list) and "DECISION_VISIBILITY_OTHER" in visibility:
        check.text("decision_visibility_other", 500, required=True)
    if check.statement.get("decision_monetary") == "DECISION_MONETARY_OTHER":
        check.text("decision_monetary_other", 500, required=True,
                   when=" when decision monetary is DECISION_MONETARY_OTHER")


def _grounds(check: _Check) -> None:
    if check.required("decision_ground"):
        check.one_of("decision_ground", GROUNDS)
    ground = check.statement.get("decision_ground")
    # The other ground's fields are excluded (ignored), not refused.
    for key, limit in GROUND_FIELDS.get(ground, ()):
        kind = "illegal content" if ground == ILLEGAL else "incompatible content"
        check.text(key, limit, required=True, when=f" when decision ground is {kind}")
    if ground == INCOMPATIBLE:
        check.one_of("incompatible_content_illegal", YES_NO, nullable=False)
    url = check.statement.get("decision_ground_reference_url")
    if url is not None and not _is_url(url):
        check.fail("decision_ground_reference_url",
                   "The decision ground reference url field must be a valid URL.")
    check.max_length("decision_ground_reference_url", 500)


def _is_url(value: Any) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def _classification(check: _Check) -> None:
    if check.required("content_type"):
        check.list_of("content_type", CONTENT_TYPES)
    content_type = check.statement.get("content_type")
    if isinstance(content_type, list) and "CONTENT_TYPE_OTHER" in content_type:
        check.text("content_type_other", 500, required=True)
    if check.required("category"):
        check.one_of("category", CATEGORIES)
    check.list_of("category_addition", CATEGORIES, nullable=False)
    check.list_of("category_specification", KEYWORDS)
    check.max_length("category_specification_other", 500)
    check.list_of("territorial_scope", COUNTRIES)
    check.one_of("content_language", LANGUAGES)


def _dates(check: _Check) -> None:
    check.day("content_date", "content date", "2000-01-01", required=True)
    check.day("application_date", "application date", "2020-01-01", required=True)
    for kind in ("account", "monetary", "service", "visibility"):
        check.day(f"end_date_{kind}_restriction", f"end date of {kind} restriction", None,
                  required=False)


def _source(check: _Check) -> None:
    check.text("decision_facts", 5000, required=True)
    if check.required("source_type"):
        check.one_of("source_type", SOURCE_TYPES)
    if check.statement.get("source_type") != "SOURCE_VOLUNTARY":  # else excluded
        check.max_length("source_identity", 500)
    if check.required("automated_detection"):
        check.one_of("automated_detection", YES_NO)
    if check.required("automated_decision"):
        check.one_of("automated_decision", AUTOMATED_DECISIONS)


def _identity(check: _Check) -> None:
    if check.required("puid"):
        check.max_length("puid", 500)
        if not PUID.fullmatch(str(check.statement["puid"])):
            check.fail("puid", "The puid format is invalid.")
    content_id = check.statement.get("content_id")
    if content_id is None:
        return
    if not isinstance(content_id, dict):
        check.fail("content_id", "The content id field must be an array.")
    elif "EAN-13" in content_id and not EAN_13.fullmatch(str(content_id["EAN-13"])):
        check.fail("content_id.EAN-13", "The content_id.EAN-13 field format is invalid.")


def _summary(errors: Errors) -> str:
    """Laravel's ``message``: the first error, and how many more there are."""
    messages = [message for field_errors in errors.values() for message in field_errors]
    more = len(messages) - 1
    return messages[0] + (f" (and {more} more error{'s' * (more > 1)})" if more else "")


def _batch_problem(statements: Any) -> str | None:
    if statements is None or statements == []:
        return "The statements field is required."
    if not isinstance(statements, list):
        return "The statements field must be an array."
    if len(statements) > 100:
        return "The statements field must have between 1 and 100 items."
    return None


class FakeTransparencyDatabase:
    """The fake API; ``serve()`` runs it on a free loopback port. Handlers run on the server's
    one event loop and do not yield between checking and storing, so calls never interleave."""

    def __init__(self, token: str = "test-transparency-token") -> None:
        self.token = token
        self.stored: dict[str, Json] = {}  # by puid, what the database holds
        self.received: list[str] = []  # puids of every call whose fields were all valid
        self.calls = 0  # authorised calls, failed ones included
        self.batch_sizes: list[int] = []  # statements per /statements call that got that far
        self.delay_s = 0.0
        self.base_url = ""  # while serving
        self._failures: list[int] = []
        self._lose_created = 0
        self.app = self._build()

    def fail_next(self, times: int = 1, status: int = 500) -> None:
        """The next ``times`` authorised calls answer ``status`` and store nothing."""
        self._failures += [status] * times

    def lose_next_created(self, times: int = 1) -> None:
        """The next ``times`` calls that store answer 500 instead of 201: the answer is lost."""
        self._lose_created += times

    @contextmanager
    def serve(self) -> Iterator[str]:
        with serving(self.app) as self.base_url:
            yield self.base_url

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v1/statements")
        async def store_many(request: Request) -> Response:
            return await self._answer(request, self._store_many)

        @app.post("/api/v1/statement")
        async def store_one(request: Request) -> Response:
            return await self._answer(request, self._store_one)

        return app

    async def _answer(self, request: Request, store: Callable[[Any], Answer]) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            status, body = 401, {"message": "Unauthenticated."}
        else:
            status, body = self._handle(await _body(request), store)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if status in (401, 422) and "json" not in request.headers.get("accept", ""):
            return RedirectResponse("/login" if status == 401 else "/", status_code=302)
        return JSONResponse(body, status_code=status)

    def _handle(self, body: Any, store: Callable[[Any], Answer]) -> Answer:
        self.calls += 1
        if self._failures:
            status = self._failures.pop(0)
            return status, {"message": "Too Many Attempts." if status == 429 else "Server Error"}
        return store(body)

    def _store_many(self, body: Any) -> Answer:
        statements = body.get("statements") if isinstance(body, dict) else None
        if problem := _batch_problem(statements):
            return 422, {"message": problem, "errors": {"statements": [problem]}}
        self.batch_sizes.append(len(statements))
        errors = {f"statement_{index}": found for index, statement in enumerate(statements)
                  if (found := validate_statement(statement))}
        if errors:
            return 422, {"errors": errors}
        puids = [str(statement["puid"]) for statement in statements]
        self.received += puids
        repeated = [puid for puid, count in Counter(puids).items() if count > 1]
        if duplicates := repeated or [puid for puid in puids if puid in self.stored]:
            return 422, {"message": NOT_UNIQUE_IN_CALL,
                         "errors": {"puid": [NOT_UNIQUE_IN_CALL], "existing_puids": duplicates}}
        return self._created({"statements": [self._store(statement) for statement in statements]})

    def _store_one(self, statement: Any) -> Answer:
        if errors := validate_statement(statement):
            return 422, {"message": _summary(errors), "errors": errors}
        puid = str(statement["puid"])
        self.received.append(puid)
        if puid in self.stored:
            return 422, {"message": NOT_UNIQUE, "errors": {"puid": [NOT_UNIQUE]},
                         "existing": {"puid": puid}}
        return self._created(self._store(statement))

    def _store(self, statement: Json) -> Json:
        record = {**statement, "uuid": str(uuid.uuid4()), "platform_name": "Test platform",
                  "created_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}
        if record["source_type"] == "SOURCE_VOLUNTARY":
            record.pop("source_identity", None)  # excluded by the rules: never stored
        record["permalink"] = f"https://transparency.dsa.ec.europa.eu/statement/{record['uuid']}"
        self.stored[str(statement["puid"])] = record
        return record

    def _created(self, body: Json) -> Answer:
        if self._lose_created:
            self._lose_created -= 1
            return 500, {"message": "Server Error"}
        return 201, body


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None
