"""The statement of reasons the Commission's Transparency Database receives for a restriction
(DSA Art. 17, 24(5)), built from the decision alone, with the exact keys its API accepts.

No personal data goes in: never the affected user, the notifier, the reviewer or the content's
location (a URL can name a person), and no ``source_identity``. The decision facts are written
without personal data; refusing facts with an e-mail address in them is a cheap guard against
the commonest slip, not a guarantee.

``check_statement`` is our side of the validation: it refuses what the database would reject
for certain (no restriction, unknown keys, missing or over-long fields) when the decision is
taken, rather than months later in a rejected batch.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from waakhond.policy.dsa import (
    ACCOUNT,
    AUTOMATED_DECISIONS,
    CATEGORIES,
    CONTENT_TYPES,
    GROUNDS,
    KEYWORDS,
    MONETARY,
    PROVISION,
    SOURCE_TYPES,
    TERRITORIES,
    VISIBILITY,
)
from waakhond.store.models import ModerationDecision

ILLEGAL = GROUNDS["illegal"]
INCOMPATIBLE = GROUNDS["terms"]
PUID_PREFIX = "wk-"

RESTRICTIONS = ("decision_visibility", "decision_monetary", "decision_provision",
                "decision_account")
_REQUIRED = ("decision_ground", "category", "content_type", "territorial_scope", "content_date",
             "application_date", "decision_facts", "source_type", "automated_detection",
             "automated_decision", "puid")
_GROUND_FIELDS = {
    ILLEGAL: ("illegal_content_legal_ground", "illegal_content_explanation"),
    INCOMPATIBLE: ("incompatible_content_ground", "incompatible_content_explanation",
                   "incompatible_content_illegal"),
}
_ONE_OF: dict[str, frozenset[str]] = {
    "decision_ground": frozenset(GROUNDS.values()), "category": CATEGORIES,
    "decision_monetary": MONETARY, "decision_provision": PROVISION, "decision_account": ACCOUNT,
    "source_type": SOURCE_TYPES, "automated_decision": AUTOMATED_DECISIONS,
    "automated_detection": frozenset({"Yes", "No"}),
    "incompatible_content_illegal": frozenset({"Yes", "No"}),
}
_ALL_OF: dict[str, frozenset[str]] = {
    "decision_visibility": VISIBILITY, "content_type": CONTENT_TYPES,
    "category_specification": KEYWORDS, "territorial_scope": TERRITORIES,
}
_MAX_LENGTH = {"decision_facts": 5000, "illegal_content_legal_ground": 500,
               "illegal_content_explanation": 2000, "incompatible_content_ground": 500,
               "incompatible_content_explanation": 2000, "puid": 500}
# The database requires a free-text description with these, which a decision does not hold.
_NEEDS_DESCRIPTION = frozenset({"DECISION_VISIBILITY_OTHER", "DECISION_MONETARY_OTHER",
                                "CONTENT_TYPE_OTHER"})
_PUID = re.compile(r"[a-zA-Z0-9_-]+")
_LANGUAGE = re.compile(r"[A-Z]{2}")  # ISO 639-1, upper case
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def new_puid() -> str:
    """A new platform unique id: random, so it is never reused and says nothing about anyone."""
    return PUID_PREFIX + secrets.token_hex(16)


def statement_for(decision: ModerationDecision, source_type: str, automated_decision: str,
                  puid: str, content_language: str | None = None) -> dict[str, Any]:
    """The Transparency Database statement for a restricting decision; ValueError when it
    cannot be valid (see ``check_statement``)."""
    statement = {
        "decision_visibility": decision.visibility,
        "decision_monetary": decision.monetary,
        "decision_provision": decision.provision,
        "decision_account": decision.account,
        "decision_ground": decision.ground,
        **_ground_fields(decision),
        "content_type": decision.content_type,
        "category": decision.category,
        "category_specification": decision.keywords,
        # No scope named: the restriction holds wherever the service is offered.
        "territorial_scope": sorted(set(decision.territorial_scope or TERRITORIES)),
        "content_language": content_language,
        "content_date": _day(decision.content_date),
        "application_date": _day(decision.decided_at),
        "decision_facts": decision.facts,
        "source_type": source_type,
        "automated_detection": "Yes" if decision.automated_detection else "No",
        "automated_decision": automated_decision,
        "puid": puid,
    }
    # Restrictions and options that do not apply are left out rather than sent empty.
    statement = {key: value for key, value in statement.items() if value not in (None, "", [])}
    check_statement(statement)
    return statement


def _ground_fields(decision: ModerationDecision) -> dict[str, str | None]:
    if decision.ground == ILLEGAL:
        return {"illegal_content_legal_ground": decision.legal_ground,
                "illegal_content_explanation": decision.facts}
    if decision.ground == INCOMPATIBLE:
        return {"incompatible_content_ground": _terms_ground(decision.category),
                "incompatible_content_explanation": decision.facts,
                # A decision names the law only when the content is illegal as well.
                "incompatible_content_illegal": "Yes" if (decision.legal_ground or "").strip()
                else "No"}
    return {}


def _terms_ground(category: str | None) -> str:
    """The decision records no clause of the terms, so the ground names the terms' rules on the
    category (e.g. "...: protection of minors")."""
    topic = (category or "").removeprefix("STATEMENT_CATEGORY_").replace("_", " ").lower()
    return f"The provider's terms and conditions: {topic}" if topic else ""


def _day(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:  # stored times are UTC; SQLite gives them back naive
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()


def check_statement(statement: dict[str, Any]) -> None:
    """Refuse a statement the database would certainly reject, or one that carries an e-mail
    address. ValueError names every problem."""
    problems = [*_missing(statement), *_unknown(statement), *_too_long(statement),
                *_personal_data(statement)]
    if problems:
        raise ValueError("the statement of reasons cannot be valid: " + "; ".join(problems))


def _missing(statement: dict[str, Any]) -> Iterator[str]:
    if not any(statement.get(key) for key in RESTRICTIONS):
        yield "it needs at least one restriction (visibility, monetary, provision or account)"
    required = (*_REQUIRED, *_GROUND_FIELDS.get(statement.get("decision_ground"), ()))
    for key in required:
        if not statement.get(key):
            yield f"{key} is required"


def _unknown(statement: dict[str, Any]) -> Iterator[str]:
    for key, allowed in _ONE_OF.items():
        if key in statement and statement[key] not in allowed:
            yield f"{key} {statement[key]!r} is not one of the database's keys"
    for key, allowed in _ALL_OF.items():
        unknown = sorted(set(statement.get(key) or ()) - allowed)
        if unknown:
            yield f"{key} has unknown keys {unknown}"
    for key in (*RESTRICTIONS, "content_type"):
        value = statement.get(key)
        chosen = set(value) if isinstance(value, list) else {value}
        if chosen & _NEEDS_DESCRIPTION:
            yield f"{key}: the *_OTHER keys need a description a decision does not hold"
    if "content_language" in statement and not _LANGUAGE.fullmatch(statement["content_language"]):
        yield "content_language must be an upper-case ISO 639-1 code"
    puid = statement.get("puid")
    if puid and not _PUID.fullmatch(puid):
        yield "puid may hold only letters, digits, '-' and '_'"


def _too_long(statement: dict[str, Any]) -> Iterator[str]:
    for key, limit in _MAX_LENGTH.items():
        if len(statement.get(key) or "") > limit:
            yield f"{key} is longer than {limit} characters"


def _personal_data(statement: dict[str, Any]) -> Iterator[str]:
    for key, value in statement.items():
        if isinstance(value, str) and _EMAIL.search(value):
            yield f"{key} holds an e-mail address (no personal data may go to the Commission)"
