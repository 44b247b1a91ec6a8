"""The policy engine: the only place where signals become a verdict.

Policies are YAML layers shipped in ``waakhond/policy/rules``: ``base.yaml`` applies
everywhere, a region layer (``EU.yaml``) to its member states, and a country layer (``NL.yaml``)
to one country. A later layer can change thresholds, override fields of a rule by its id
(an action, a legal source), disable a rule, or add rules. Every rule that fires becomes a
``Reason`` with its evidence and the law it cites; the most severe action wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pycountry
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from waakhond.core import Action, Context, DsaClassification, Reason
from waakhond.errors import PolicyError, UnknownCountry
from waakhond.policy.dsa import GROUNDS, synthetic_keywords, validate_dsa
from waakhond.policy.facts import FactSet, Thresholds, derive_facts, detector_needed, fact_names
from waakhond.signals import SignalSet

RULES_DIR = Path(__file__).with_name("rules")
BASE_LAYER = "base"
# Codes people use that ISO 3166 spells differently.
_COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[str] = []
    any: list[str] = []
    none: list[str] = []

    def names(self) -> list[str]:
        return [*self.all, *self.any, *self.none]

    def holds(self, facts: FactSet) -> bool:
        return (
            all(facts[n].holds for n in self.all)
            and (not self.any or any(facts[n].holds for n in self.any))
            and not any(facts[n].holds for n in self.none)
        )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    when: Condition
    action: Action
    text: str
    labels: list[str] = []
    ground: Literal["illegal", "terms"] | None = None
    category: str | None = None
    keywords: list[str] = []
    legal_source: str | None = None
    unverified: str | None = None  # what about the legal source is not yet confirmed

    @model_validator(mode="after")
    def _restrictions_are_classified(self) -> Rule:
        if self.action is not Action.ALLOW and (self.ground is None or self.category is None):
            raise ValueError("a rule that restricts content needs a ground and a DSA category")
        validate_dsa(self.category, self.keywords)
        return self


class Layer(BaseModel):
    """One YAML file. Rule entries in a non-base layer may be partial overrides."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    extends: str | None = None
    applies_to: list[str] = []
    version: str | None = None
    thresholds: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    default: dict[str, str] | None = None
    sources: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    action: Action
    labels: list[str]
    reasons: list[Reason]
    dsa: DsaClassification | None


@dataclass(frozen=True)
class Policy:
    """A resolved policy for one jurisdiction: thresholds plus rules in order."""

    version: str
    layers: tuple[str, ...]
    thresholds: Thresholds
    rules: tuple[Rule, ...]
    default_text: str

    def needs(self, field: str, signals: SignalSet, context: Context) -> bool:
        """The cascade: whether the detector filling ``field`` must run on this image."""
        return detector_needed(field, signals, context, self.thresholds)

    def decide(self, signals: SignalSet, context: Context) -> Decision:
        facts = derive_facts(signals, context, self.thresholds)
        fired = [rule for rule in self.rules if rule.when.holds(facts)]
        if not fired:
            reason = Reason("default.allow", Action.ALLOW, self.default_text, _summary(facts))
            return Decision(Action.ALLOW, [], [reason], None)
        action = max((rule.action for rule in fired), key=lambda a: a.severity)
        labels = list(dict.fromkeys(label for rule in fired for label in rule.labels))
        reasons = [_reason(rule, facts) for rule in fired]
        return Decision(action, labels, reasons, _classify(fired, action, facts))


def _reason(rule: Rule, facts: FactSet) -> Reason:
    evidence: dict[str, Any] = {}
    for name in [*rule.when.all, *rule.when.any]:
        if facts[name].holds:
            evidence.update(facts[name].evidence)
    source = rule.legal_source
    if source and rule.unverified:
        source = f"{source} (unverified: {rule.unverified})"
    return Reason(rule.id, rule.action, rule.text, evidence, source)


def _classify(fired: list[Rule], action: Action, facts: FactSet) -> DsaClassification | None:
    """The DSA classification of the most severe restriction.

    Among rules of that severity, one that rests on law wins over one that rests on terms
    and conditions (the statement of reasons should name the stronger ground); then the
    earliest rule wins.
    """
    top = [rule for rule in fired if rule.action is action and rule.category]
    if action is Action.ALLOW or not top:
        return None
    top.sort(key=lambda rule: rule.ground != "illegal")
    keywords = list(dict.fromkeys(k for rule in top for k in rule.keywords))
    if facts["synthetic"].holds:
        keywords = synthetic_keywords(keywords)
    assert top[0].category is not None and top[0].ground is not None
    return DsaClassification(top[0].category, tuple(keywords), GROUNDS[top[0].ground])


def _summary(facts: FactSet) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    for name in ("sexual_exposed", "suggestive", "face_present"):
        evidence.update(facts[name].evidence)
    return evidence


# ---------------------------------------------------------------------------------------
# Loading and resolving layers
# ---------------------------------------------------------------------------------------


def normalise_country(country: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 code in upper case, or UnknownCountry with a helpful message."""
    if country is None or country == "":
        return None
    code = country.strip().upper()
    code = _COUNTRY_ALIASES.get(code, code)
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise UnknownCountry(
            f"unknown country {country!r}: use an ISO 3166-1 alpha-2 code such as NL, FR or US"
        )
    return code


@cache
def _load_layers(directory: Path) -> dict[str, Layer]:
    layers: dict[str, Layer] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            layer = Layer.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise PolicyError(f"{path.name}: {exc}") from exc
        if layer.name != path.stem:
            raise PolicyError(f"{path.name}: name {layer.name!r} must match the file name")
        layers[layer.name] = layer
    if BASE_LAYER not in layers:
        raise PolicyError(f"no {BASE_LAYER}.yaml in {directory}")
    return layers


def _chain(layers: dict[str, Layer], country: str | None) -> list[Layer]:
    """Base first, then each layer the country's most specific layer extends."""
    candidates = [layer for layer in layers.values() if country in layer.applies_to]

    def lineage(layer: Layer) -> list[Layer]:
        seen: list[Layer] = [layer]
        while seen[-1].extends:
            parent = layers.get(seen[-1].extends)
            if parent is None or parent in seen:
                raise PolicyError(f"{seen[-1].name}: bad 'extends: {seen[-1].extends}'")
            seen.append(parent)
        return seen[::-1]

    chains = [lineage(layer) for layer in candidates] or [[layers[BASE_LAYER]]]
    chain = max(chains, key=len)
    if chain[0].name != BASE_LAYER:
        raise PolicyError(f"{chain[-1].name}: every layer must extend {BASE_LAYER}")
    return chain


@cache
def load_policy(country: str | None = None, directory: Path = RULES_DIR) -> Policy:
    """The policy for a country (None: the base policy alone)."""
    code = normalise_country(country)
    chain = _chain(_load_layers(directory), code)
    thresholds: dict[str, Any] = {}
    rules: dict[str, dict[str, Any]] = {}
    for layer in chain:
        thresholds.update(layer.thresholds)
        for entry in layer.rules:
            _apply_rule(layer.name, rules, entry)
    try:
        resolved = Thresholds.model_validate(thresholds)
        parsed = tuple(Rule.model_validate(r) for r in rules.values() if not r.get("disabled"))
    except ValidationError as exc:
        raise PolicyError(f"policy for {code or 'base'}: {exc}") from exc
    _check_consistency(resolved, parsed)
    base = chain[0]
    return Policy(
        version=base.version or "unversioned",
        layers=tuple(layer.name for layer in chain),
        thresholds=resolved,
        rules=parsed,
        default_text=(base.default or {}).get("text", "No rule matched."),
    )


def _apply_rule(layer: str, rules: dict[str, dict[str, Any]], entry: dict[str, Any]) -> None:
    rule_id = entry.get("id")
    if not rule_id:
        raise PolicyError(f"{layer}: a rule without an id")
    if rule_id in rules:
        rules[rule_id] = {**rules[rule_id], **entry}
    elif layer != BASE_LAYER and set(entry) <= {"id", "legal_source", "unverified", "disabled"}:
        raise PolicyError(f"{layer}: overrides rule {rule_id!r}, which no earlier layer has")
    else:
        rules[rule_id] = dict(entry)


def _check_consistency(t: Thresholds, rules: tuple[Rule, ...]) -> None:
    known = fact_names()
    for rule in rules:
        unknown = set(rule.when.names()) - known
        if unknown:
            raise PolicyError(f"rule {rule.id}: unknown facts {sorted(unknown)}")
    if t.cascade_region_score > min(t.exposed_region_score, t.covered_region_score) or \
            t.cascade_nsfw > min(t.nsfw_explicit, t.nsfw_suggestive):
        raise PolicyError("cascade thresholds must not exceed the fact thresholds, or faces "
                          "could be skipped for content a minor rule needs to see")
