"""Reports of suspected crimes (DSA Art. 18) as a package a person can download and send.

Art. 18 asks a platform that suspects a criminal offence threatening life or safety (recital 56
names child sexual abuse) to inform the law-enforcement authority of the Member State concerned,
or Europol when that state is unknown, with the content, the time and time zone, why it is
suspected and what locates the user. In the US, child sexual abuse goes to NCMEC's CyberTipline
(cybertipline.py sends the same facts over its API).

A package names the files by evidence id and hash, never with their bytes: it is sent by e-mail
or a portal, and the material itself only ever travels through the authority's own channel.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry

from waakhond.policy.dsa import CATEGORIES

SCHEMA = "waakhond.crime-report/1"
# pdq_inside_border: the PDQ of the picture inside a solid border (a framed or letterboxed
# copy), kept beside the whole image's so a hotline can match copies without the frame.
HASH_KINDS = frozenset({"md5", "sha256", "pdq", "pdq_inside_border"})
CHILD_SEXUAL_ABUSE_LABELS = frozenset({"SEXUAL_MINOR"})
CHILD_SEXUAL_ABUSE_KEYWORDS = frozenset({
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
    "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",
})

# Default recipients per EU/EEA state: the national police. These are starting points, not
# legal advice: a platform agrees its contact point with each authority (often a specialised
# unit) and passes its own names to choose_destination(authorities=...).
LAW_ENFORCEMENT: Mapping[str, str] = MappingProxyType({
    "AT": "Bundeskriminalamt (Austrian Federal Criminal Police Office)",
    "BE": "Federal Police (Police fédérale / Federale Politie)",
    "BG": "General Directorate National Police (Bulgaria)",
    "CY": "Cyprus Police",
    "CZ": "Police of the Czech Republic",
    "DE": "Bundeskriminalamt (German Federal Criminal Police Office)",
    "DK": "Danish National Police (Rigspolitiet)",
    "EE": "Police and Border Guard Board (Estonia)",
    "ES": "Policía Nacional (Spain)",
    "FI": "National Bureau of Investigation (Finland)",
    "FR": "Police nationale (France)",
    "GR": "Hellenic Police",
    "HR": "Croatian Police (Ministry of the Interior)",
    "HU": "Hungarian National Police",
    "IE": "An Garda Síochána (Ireland)",
    "IS": "Icelandic Police",
    "IT": "Polizia di Stato (Italy)",
    "LI": "Liechtenstein National Police",
    "LT": "Lithuanian Police",
    "LU": "Grand Ducal Police (Luxembourg)",
    "LV": "State Police of Latvia",
    "MT": "Malta Police Force",
    "NL": "Politie (Netherlands Police)",
    "NO": "Kripos (Norwegian National Criminal Investigation Service)",
    "PL": "Policja (Polish Police)",
    "PT": "Polícia Judiciária (Portugal)",
    "RO": "Romanian Police",
    "SE": "Swedish Police Authority (Polisen)",
    "SI": "Slovenian Police",
    "SK": "Police Force of the Slovak Republic",
})


class ReportError(ValueError):
    """The facts cannot make a report as given; the message says what is wrong."""


class Channel(StrEnum):
    CYBERTIPLINE = "cybertipline"  # NCMEC, over its API (or its web form)
    LAW_ENFORCEMENT = "law_enforcement"  # a Member State's authority (Art. 18(1))
    EUROPOL = "europol"  # the Member State concerned is unknown (Art. 18(2))


@dataclass(frozen=True)
class Destination:
    code: str  # "ncmec", "europol" or the Member State's ISO code
    name: str
    channel: Channel


NCMEC = Destination("ncmec", "NCMEC CyberTipline", Channel.CYBERTIPLINE)
EUROPOL = Destination("europol", "Europol", Channel.EUROPOL)


@dataclass(frozen=True)
class UserLocator:
    """What locates the user (Art. 18(1)): their id at the platform, and more when known."""

    platform_user_id: str
    ip_address: str | None = None
    account_url: str | None = None


@dataclass(frozen=True)
class CaseFacts:
    """The facts of a case that a report is made from, after a person reviewed it."""

    case_reference: str
    category: str  # a STATEMENT_CATEGORY_* key
    keywords: tuple[str, ...]
    labels: tuple[str, ...]  # screening labels, e.g. "SEXUAL_MINOR"
    content_location: str  # where the content is (a URL or the platform's own reference)
    occurred_at: datetime  # time zone aware
    timezone: str  # IANA name, e.g. "Europe/Amsterdam": the time is reported in it
    why_suspected: str  # the reviewer's summary
    user: UserLocator
    country: str | None  # ISO 3166-1 alpha-2 of the state concerned; None when unknown
    hashes: Mapping[str, str]  # HASH_KINDS of the content
    evidence_ids: tuple[int, ...]  # the case's evidence items holding the files
    generative_ai: bool  # made or edited by an AI generator
    reviewer: str
    # NCMEC's fileViewedByEsp: whether a person at the platform looked at the files
    viewed_by_reviewer: bool = False

    def __post_init__(self) -> None:
        _check_required(self)
        _check_time(self.occurred_at, self.timezone)
        _check_country(self.country)
        _check_hashes(self.hashes)
        if self.user.ip_address is not None:
            try:
                ipaddress.ip_address(self.user.ip_address)
            except ValueError as exc:
                raise ReportError(f"not an IP address: {self.user.ip_address!r}") from exc

    @property
    def child_sexual_abuse(self) -> bool:
        return bool(CHILD_SEXUAL_ABUSE_LABELS.intersection(self.labels)
                    or CHILD_SEXUAL_ABUSE_KEYWORDS.intersection(self.keywords))


def _check_required(facts: CaseFacts) -> None:
    if facts.category not in CATEGORIES:
        raise ReportError(f"unknown category {facts.category!r}; use a STATEMENT_CATEGORY_* key")
    required = {
        "case_reference": facts.case_reference, "content_location": facts.content_location,
        "why_suspected": facts.why_suspected, "reviewer": facts.reviewer,
        "user.platform_user_id": facts.user.platform_user_id,
    }
    missing = sorted(name for name, value in required.items() if not value.strip())
    if missing:
        raise ReportError(f"a report needs {', '.join(missing)}")


def _check_time(moment: datetime, zone: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ReportError("occurred_at needs a time zone (Art. 18 asks for time and time zone)")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError(f"unknown time zone {zone!r}; use an IANA name") from exc


def _check_country(country: str | None) -> None:
    if country is not None and (
        len(country) != 2 or not country.isupper()
        or pycountry.countries.get(alpha_2=country) is None
    ):
        raise ReportError(f"country {country!r} is not an ISO 3166-1 alpha-2 code (e.g. NL)")


def _check_hashes(hashes: Mapping[str, str]) -> None:
    unknown = sorted(set(hashes) - HASH_KINDS)
    if unknown:
        raise ReportError(f"unknown hash kinds {unknown}; use {sorted(HASH_KINDS)}")


def choose_destination(facts: CaseFacts, *, ncmec_by_default: bool = False,
                       authorities: Mapping[str, str] | None = None) -> Destination:
    """Where the report goes.

    Child sexual abuse with a US nexus goes to NCMEC, and so does all of it on a platform
    configured to report there (``ncmec_by_default``: a US provider must, 18 U.S.C. 2258A).
    Otherwise an EU/EEA state's authority (``authorities`` overrides LAW_ENFORCEMENT names),
    and Europol when the state concerned is unknown or outside the EU/EEA (Art. 18(2)).
    """
    if facts.child_sexual_abuse and (facts.country == "US" or ncmec_by_default):
        return NCMEC
    names = {**LAW_ENFORCEMENT, **(authorities or {})}
    if facts.country in names:
        return Destination(facts.country, names[facts.country], Channel.LAW_ENFORCEMENT)
    return EUROPOL


def build_package(facts: CaseFacts, destination: Destination,
                  created_at: datetime | None = None) -> dict[str, Any]:
    """The report as JSON-ready data: the Art. 18 fields, files by evidence id and hash."""
    created = created_at or datetime.now(UTC)
    if created.tzinfo is None:
        raise ReportError("created_at needs a time zone")
    return {
        "schema": SCHEMA,
        "created_at": created.isoformat(),
        "destination": {"code": destination.code, "name": destination.name,
                        "channel": destination.channel.value},
        "legal_basis": _legal_basis(destination),
        "case_reference": facts.case_reference,
        "offence": {
            "category": facts.category,
            "keywords": sorted(facts.keywords),
            "labels": sorted(facts.labels),
            "child_sexual_abuse": facts.child_sexual_abuse,
        },
        "content": {
            "location": facts.content_location,
            "generative_ai": facts.generative_ai,
            "hashes": dict(facts.hashes),
            "evidence_ids": list(facts.evidence_ids),
            "viewed_by_reviewer": facts.viewed_by_reviewer,
        },
        "occurred_at": facts.occurred_at.astimezone(ZoneInfo(facts.timezone)).isoformat(),
        "timezone": facts.timezone,
        "why_suspected": facts.why_suspected,
        "user": {"platform_user_id": facts.user.platform_user_id,
                 "ip_address": facts.user.ip_address, "account_url": facts.user.account_url},
        "country": facts.country,
        "reviewer": facts.reviewer,
    }


def _legal_basis(destination: Destination) -> str:
    if destination.channel is Channel.CYBERTIPLINE:
        return "18 U.S.C. 2258A (CyberTipline report)"
    return "Regulation (EU) 2022/2065 (Digital Services Act), Art. 18"


def export(package: Mapping[str, Any]) -> bytes:
    """The package as UTF-8 JSON with sorted keys: the same package always gives the same
    bytes, so a hash of the download identifies what was sent."""
    text = json.dumps(package, sort_keys=True, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")


def facts_from_package(package: Mapping[str, Any]) -> CaseFacts:
    """The facts a stored package was built from, to submit it later exactly as built."""
    offence, content, user = package["offence"], package["content"], package["user"]
    return CaseFacts(
        case_reference=package["case_reference"], category=offence["category"],
        keywords=tuple(offence["keywords"]), labels=tuple(offence["labels"]),
        content_location=content["location"],
        occurred_at=datetime.fromisoformat(package["occurred_at"]),
        timezone=package["timezone"], why_suspected=package["why_suspected"],
        user=UserLocator(**user), country=package["country"], hashes=content["hashes"],
        evidence_ids=tuple(content["evidence_ids"]), generative_ai=content["generative_ai"],
        reviewer=package["reviewer"], viewed_by_reviewer=content["viewed_by_reviewer"])
