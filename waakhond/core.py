"""The types every part of waakhond speaks: contexts, actions, reasons and verdicts.

Nothing here knows about models or rules; it is the shared vocabulary that flows one way
from intake to signals to policy to the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Context(StrEnum):
    """Where an image comes from; the policy treats each differently."""

    UPLOAD = "upload"  # a user posts an existing image
    GENERATED = "generated"  # our generator produced it and nobody has seen it yet
    EDIT_INPUT = "edit_input"  # a photo a user wants an AI model to edit
    PROMPT = "prompt"  # a text-to-image prompt, before anything is generated

    @classmethod
    def parse(cls, value: str | Context) -> Context:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown context {value!r}; use one of: {names}") from None


class Action(StrEnum):
    """What happens to the content, from mildest to most severe."""

    ALLOW = "allow"
    AGE_RESTRICT = "age_restrict"
    REVIEW = "review"
    BLOCK = "block"
    BLOCK_AND_REPORT = "block_and_report"

    @property
    def severity(self) -> int:
        return list(Action).index(self)

    @property
    def blocks(self) -> bool:
        return self in (Action.BLOCK, Action.BLOCK_AND_REPORT)


@dataclass(frozen=True)
class Reason:
    """One rule that fired, with the evidence that made it fire and the law it rests on."""

    rule_id: str
    action: Action
    text: str
    evidence: dict[str, Any]
    legal_source: str | None = None


@dataclass(frozen=True)
class DsaClassification:
    """The Transparency Database classification of a restriction (see docs/policy.md)."""

    category: str
    keywords: tuple[str, ...]
    decision_ground: str  # DECISION_GROUND_ILLEGAL_CONTENT or ..._INCOMPATIBLE_CONTENT


@dataclass(frozen=True)
class ImageInfo:
    """What intake learned about the bytes, before any detector ran."""

    format: str
    mime_type: str
    width: int
    height: int
    frame_count: int
    frames_screened: int
    byte_size: int


@dataclass
class Verdict:
    """The answer for one piece of content: what to do, why, and on what evidence."""

    action: Action
    labels: list[str]
    reasons: list[Reason]
    dsa: DsaClassification | None
    policy_version: str
    jurisdiction: list[str]  # the policy layers applied, most general first
    context: Context
    country: str | None
    signals: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    image: ImageInfo | None = None
    source: str | None = None  # a file name, when the CLI screened a file
    # An edit input's faces (signals.base.ReferenceFace), for screening the edit's outputs.
    # Biometric: kept in memory for the request, never in the dict, a log or an answer.
    reference_faces: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def blocks(self) -> bool:
        return self.action.blocks

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the schema is documented in the README."""
        data = asdict(self)
        del data["reference_faces"]
        data["action"] = self.action.value
        data["context"] = self.context.value
        data["reasons"] = [
            {**asdict(reason), "action": reason.action.value} for reason in self.reasons
        ]
        return data

    def __str__(self) -> str:
        return format_verdict(self)


def format_verdict(verdict: Verdict) -> str:
    """A short human-readable report, as the CLI prints it."""
    head = verdict.source or "image"
    lines = [f"{head}: {verdict.action.value.upper()}"]
    if verdict.labels:
        lines.append(f"  labels: {', '.join(verdict.labels)}")
    if verdict.dsa:
        keywords = ", ".join(verdict.dsa.keywords) or "-"
        lines.append(f"  DSA: {verdict.dsa.category} [{keywords}] ({verdict.dsa.decision_ground})")
    for reason in verdict.reasons:
        lines.append(f"  - [{reason.rule_id}] {reason.action.value}: {reason.text}")
        if reason.legal_source:
            lines.append(f"      law: {reason.legal_source}")
        if reason.evidence:
            evidence = ", ".join(f"{k}={v}" for k, v in reason.evidence.items())
            lines.append(f"      evidence: {evidence}")
    where = verdict.country or "no country"
    layers = " > ".join(verdict.jurisdiction)
    lines.append(f"  policy {verdict.policy_version} ({layers}; {where}; {verdict.context.value})")
    total = sum(verdict.timings_ms.values())
    lines.append(f"  screened in {total:.0f} ms")
    return "\n".join(lines)
