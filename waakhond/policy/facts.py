"""Facts: the yes/no statements rules are written in, derived from signals and thresholds.

Each fact carries the evidence values behind it, so every reason in a verdict can show the
numbers that made its rule fire. Thresholds come from the policy files, never from code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from waakhond.core import Context
from waakhond.signals import SignalSet
from waakhond.signals.base import ReferenceFace
from waakhond.signals.prompt import PROMPT_INTENTS, reads_as


class Thresholds(BaseModel):
    """Every number the rules depend on. Defaults and reasons: docs/policy.md."""

    model_config = ConfigDict(extra="forbid")

    exposed_classes: list[str]
    covered_classes: list[str]
    # A region counts when its score reaches *_region_score AND open-NSFW reaches
    # *_nsfw_support (two models agree), or when the region alone reaches *_region_alone, or
    # open-NSFW alone reaches nsfw_explicit / nsfw_suggestive.
    exposed_region_score: float = Field(ge=0, le=1)
    exposed_nsfw_support: float = Field(ge=0, le=1)
    exposed_region_alone: float = Field(ge=0, le=1)
    nsfw_explicit: float = Field(ge=0, le=1)
    covered_region_score: float = Field(ge=0, le=1)
    covered_nsfw_support: float = Field(ge=0, le=1)
    covered_region_alone: float = Field(ge=0, le=1)
    nsfw_suggestive: float = Field(ge=0, le=1)
    minor_age_bound: float = Field(ge=18, le=40)
    minor_probability: float = Field(ge=0, le=1)
    # A prompt intent (0..1, waakhond/signals/prompt.py) counts from this score on.
    prompt_intent: float = Field(ge=0, le=1)
    # From this classifier score on, a prompt's minor counts without a child word or an age.
    prompt_minor_report: float = Field(ge=0, le=1)
    # The same for a prompt's sexual or undressing intent without a listed word.
    prompt_sexual_report: float = Field(ge=0, le=1)
    cascade_region_score: float = Field(ge=0, le=1)
    cascade_nsfw: float = Field(ge=0, le=1)
    # Two faces are the same person below this distance between their identity vectors.
    same_person_distance: float = Field(gt=0, le=2)


@dataclass(frozen=True)
class Fact:
    holds: bool
    evidence: dict[str, Any]


FactSet = dict[str, Fact]


def derive_facts(signals: SignalSet, context: Context, t: Thresholds) -> FactSet:
    facts = {name: derive(signals, t) for name, derive in _DERIVATIONS.items()}
    facts.update(_prompt_facts(signals, t))
    facts.update(_bank_facts(signals))
    for ctx in Context:
        facts[f"context:{ctx.value}"] = Fact(context is ctx, {})
    facts["synthetic"] = Fact(
        context is Context.GENERATED or facts["declared_ai"].holds,
        {"context": context.value, **facts["declared_ai"].evidence},
    )
    return facts


def fact_names() -> set[str]:
    """Every name a rule may use, for validating policy files at load time."""
    return {*_DERIVATIONS, *_PROMPT_FACTS, *_BANK_FACTS, "synthetic",
            *(f"context:{c.value}" for c in Context)}


# Bank facts: one per kind of bank whose match a rule can act on (a negative bank's match
# never reaches the policy: it suppresses the others in the matcher).
_BANK_FACTS = {f"bank:{kind}": kind for kind in ("csam_known", "ncii_victim", "own_removals")}


def _bank_facts(signals: SignalSet) -> FactSet:
    matches = signals.bank_matches.matches if signals.bank_matches else ()
    facts: FactSet = {}
    for name, kind in _BANK_FACTS.items():
        hits = [{"bank": m.bank, "entry_id": m.entry_id, "signal_type": m.signal_type,
                 "distance": m.distance} for m in matches if m.kind == kind]
        facts[name] = Fact(bool(hits), {"matches": hits} if hits else {})
    return facts


# Prompt facts: one per intent the prompt detector scores.
_PROMPT_FACTS = {f"prompt_{intent}": intent for intent in PROMPT_INTENTS}


def _prompt_facts(signals: SignalSet, t: Thresholds) -> FactSet:
    prompt = signals.prompt
    facts: FactSet = {}
    for name, intent in _PROMPT_FACTS.items():
        score = prompt.scores.get(intent, 0.0) if prompt else 0.0
        terms = sorted({term for i, term, _ in prompt.lexicon_hits if reads_as(i) == intent}) \
            if prompt else []
        evidence: dict[str, Any] = {name: score} if prompt else {}
        if terms:
            evidence[f"{name}_terms"] = terms
        if intent == "real_person" and prompt and prompt.named_person:
            evidence["named_person"] = prompt.named_person
        facts[name] = Fact(score >= t.prompt_intent, evidence)
    return facts


# The intents that, with a minor, make a prompt a request for abuse material.
_REPORTED_HARMS = frozenset({"sexual", "undress"})


def _prompt_reportable(signals: SignalSet, t: Thresholds) -> Fact:
    """Evidence enough for a report: a minor and sexual content or undressing each named by a
    listed word (a child word or an age under 18; a sexual or undressing word, not an ambiguous
    one such as Swedish "sex", six), or scored very high by the classifier. The classifier
    alone read "two adults" as a minor, and a children's play of "The Emperor's New Clothes"
    as sexual."""
    prompt = signals.prompt
    if prompt is None:
        return Fact(False, {})
    named = {intent for intent, _, _ in prompt.lexicon_hits}
    minor = prompt.classifier.get("minor", 0.0)
    sexual = max(prompt.classifier.get(i, 0.0) for i in _REPORTED_HARMS)
    minor_named, harm_named = "minor" in named, bool(named & _REPORTED_HARMS)
    return Fact((minor_named or minor >= t.prompt_minor_report)
                and (harm_named or sexual >= t.prompt_sexual_report),
                {"prompt_minor_classifier": minor, "prompt_minor_named": minor_named,
                 "prompt_sexual_classifier": sexual, "prompt_sexual_named": harm_named})


def detector_needed(field: str, signals: SignalSet, context: Context, t: Thresholds) -> bool:
    """The cascade: costly detectors run only where a rule could need what they find.

    Detectors not named here always run.
    """
    if field == "faces":
        return _needs_faces(signals, context, t)
    if field == "nsfw":
        return _needs_nsfw(signals)
    if field == "identities":  # only where faces were looked for, and found
        return bool(signals.faces and signals.faces.faces)
    if field == "registry_matches":
        return bool(signals.identities and signals.identities.embeddings)
    return True


def _needs_nsfw(signals: SignalSet) -> bool:
    """Open-NSFW runs once NudeNet sees any of its 18 classes (faces, feet and armpits
    included) at its own 0.2 floor, or when NudeNet failed. With no body part in sight it
    could only add the open-NSFW-alone path, and skipping it on objects and landscapes
    halves their cost (docs/benchmarks.md)."""
    return signals.nudity is None or bool(signals.nudity.regions)


def _needs_faces(signals: SignalSet, context: Context, t: Thresholds) -> bool:
    """Face and age estimation run for every edit input and after any nudity signal.

    The cascade thresholds sit below the fact thresholds (checked at load), so whenever a
    nudity or suggestive fact can hold, faces have been looked for.
    """
    if context is Context.EDIT_INPUT:
        return True
    regions = signals.nudity.max_score({*t.exposed_classes, *t.covered_classes}) \
        if signals.nudity else 0.0
    nsfw = signals.nsfw.score if signals.nsfw else 0.0
    return regions >= t.cascade_region_score or nsfw >= t.cascade_nsfw


def _strongest(signals: SignalSet, classes: list[str]) -> tuple[str | None, float]:
    if not signals.nudity:
        return None, 0.0
    hits = [r for r in signals.nudity.regions if r.label in classes]
    if not hits:
        return None, 0.0
    best = max(hits, key=lambda r: r.score)
    return best.label, best.score


@dataclass(frozen=True)
class _NudityRule:
    classes: list[str]
    region: float  # a region at least this strong counts if open-NSFW supports it
    support: float  # the open-NSFW score that supports a region
    region_alone: float  # a region this strong counts on its own
    nsfw_alone: float  # an open-NSFW score this high counts on its own


def _nudity_evidence(signals: SignalSet, classes: list[str]) -> tuple[float, float, dict]:
    label, score = _strongest(signals, classes)
    nsfw = signals.nsfw.score if signals.nsfw else 0.0
    # A score the cascade never computed is not evidence; say nothing rather than 0.
    evidence: dict[str, Any] = {"nsfw_score": round(nsfw, 3)} if signals.nsfw else {}
    if label:
        evidence.update(region=label, region_score=round(score, 3))
    return score, nsfw, evidence


def _nudity_fact(signals: SignalSet, rule: _NudityRule) -> Fact:
    # NudeNet alone mistakes bare shoulders, lips or clothing folds for sexual regions at
    # scores near 0.5 on harmless face photos; open-NSFW alone rises on skin-toned textures.
    # Agreement between the two, or a very strong score from either, is what counts.
    score, nsfw, evidence = _nudity_evidence(signals, rule.classes)
    holds = (score >= rule.region and nsfw >= rule.support) or score >= rule.region_alone \
        or nsfw >= rule.nsfw_alone
    return Fact(holds, evidence)


def _exposed_rule(t: Thresholds) -> _NudityRule:
    return _NudityRule(t.exposed_classes, t.exposed_region_score, t.exposed_nsfw_support,
                       t.exposed_region_alone, t.nsfw_explicit)


def _sexual_exposed(signals: SignalSet, t: Thresholds) -> Fact:
    return _nudity_fact(signals, _exposed_rule(t))


def _nudity_uncertain(signals: SignalSet, t: Thresholds) -> Fact:
    """An exposed region above the threshold that open-NSFW does not support."""
    score, _, evidence = _nudity_evidence(signals, t.exposed_classes)
    exposed = _nudity_fact(signals, _exposed_rule(t)).holds
    return Fact(score >= t.exposed_region_score and not exposed, evidence)


def _suggestive(signals: SignalSet, t: Thresholds) -> Fact:
    return _nudity_fact(signals, _NudityRule(
        t.covered_classes, t.covered_region_score, t.covered_nsfw_support,
        t.covered_region_alone, t.nsfw_suggestive))


def _face_present(signals: SignalSet, t: Thresholds) -> Fact:
    if signals.faces is None:  # the cascade did not ask for faces
        return Fact(False, {})
    count = len(signals.faces.faces)
    return Fact(count > 0, {"faces": count})


def _possible_minor(signals: SignalSet, t: Thresholds) -> Fact:
    faces = signals.faces.faces if signals.faces else []
    ages = [f.youngest for f in faces if f.youngest is not None]
    if not ages:
        return Fact(False, {})
    youngest = min(ages)
    p_minor = max(f.p_minor or 0.0 for f in faces)
    holds = youngest < t.minor_age_bound or p_minor >= t.minor_probability
    return Fact(holds, {"youngest_apparent_age": youngest, "max_p_minor": round(p_minor, 3),
                        "minor_age_bound": t.minor_age_bound})


def _age_unverified(signals: SignalSet, t: Thresholds) -> Fact:
    # Only meaningful when face detection ran and found nobody whose age we could estimate.
    ran = signals.faces is not None
    return Fact(ran and not signals.faces.faces, {"faces": 0} if ran else {})


def _declared_ai(signals: SignalSet, t: Thresholds) -> Fact:
    p = signals.provenance
    if not p or not p.ai_generated:
        return Fact(False, {})
    return Fact(True, {"c2pa_digital_source_type": p.digital_source_type})


def _same_person(signals: SignalSet, t: Thresholds) -> tuple[float, ReferenceFace] | None:
    """The closest pair of an output face and an input face, if they are the same person."""
    if not signals.input_faces or not signals.identities:
        return None
    pairs = [(float(np.linalg.norm(e.array() - r.array())), r)
             for e in signals.identities.embeddings for r in signals.input_faces]
    distance, reference = min(pairs, key=lambda pair: pair[0])
    return (distance, reference) if distance < t.same_person_distance else None


def _same_person_as_input(signals: SignalSet, t: Thresholds) -> Fact:
    found = _same_person(signals, t)
    return Fact(found is not None, {"identity_distance": round(found[0], 3)} if found else {})


def _input_possible_minor(signals: SignalSet, t: Thresholds) -> Fact:
    """The input face that the output's face matches may belong to a minor."""
    found = _same_person(signals, t)
    if found is None:
        return Fact(False, {})
    face = found[1]
    young = face.youngest_age is not None and face.youngest_age < t.minor_age_bound
    likely = (face.p_minor or 0.0) >= t.minor_probability
    return Fact(young or likely, {"input_youngest_apparent_age": face.youngest_age,
                                  "input_p_minor": face.p_minor})


def _registry(signals: SignalSet, scopes: set[str]) -> Fact:
    """A face matches someone in the opt-out registry whose scope forbids this; the
    evidence says only what is forbidden, never who."""
    matches = signals.registry_matches.matches if signals.registry_matches else []
    hits = [m for m in matches if m.scope in scopes]
    return Fact(bool(hits), {"registry_scope": sorted({m.scope for m in hits})} if hits else {})


def _registry_no_sexual(signals: SignalSet, t: Thresholds) -> Fact:
    return _registry(signals, {"no_sexual", "no_edits"})


def _registry_no_edits(signals: SignalSet, t: Thresholds) -> Fact:
    return _registry(signals, {"no_edits"})


# Prompt labels under which an output's unconfirmed nudity is withheld rather than let through.
_NUDITY_LIKELY_LABELS = frozenset({"SUGGESTIVE", "NUDITY_PRONE"})


def _prompt_made_nudity_likely(signals: SignalSet, t: Thresholds) -> Fact:
    labels = sorted(_NUDITY_LIKELY_LABELS.intersection(signals.prompt_labels))
    return Fact(bool(labels), {"prompt_labels": labels} if labels else {})


def _detector_failed(signals: SignalSet, t: Thresholds) -> Fact:
    return Fact(bool(signals.errors), {"failed_detectors": sorted(signals.errors)})


_DERIVATIONS: dict[str, Callable[[SignalSet, Thresholds], Fact]] = {
    "sexual_exposed": _sexual_exposed,
    "nudity_uncertain": _nudity_uncertain,
    "suggestive": _suggestive,
    "face_present": _face_present,
    "possible_minor": _possible_minor,
    "age_unverified": _age_unverified,
    "declared_ai": _declared_ai,
    "detector_failed": _detector_failed,
    "prompt_made_nudity_likely": _prompt_made_nudity_likely,
    "prompt_reportable": _prompt_reportable,
    "same_person_as_input": _same_person_as_input,
    "input_possible_minor": _input_possible_minor,
    "registry_no_sexual": _registry_no_sexual,
    "registry_no_edits": _registry_no_edits,
}
