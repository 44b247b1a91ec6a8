"""The orchestrator: intake, then detectors (with the face cascade), then the policy.

The screener fails closed: if a detector raises, the policy sees the failure and blocks; if
anything after intake raises unexpectedly, the verdict is a block that says why. Only bad
input raises to the caller, as an ``InputError`` with a clear message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from waakhond.config import ScreeningSettings
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.errors import EmptyInput, InputTooLarge
from waakhond.intake import DecodedImage, decode_image
from waakhond.policy import Policy, load_policy, normalise_country
from waakhond.signals import Detector, SignalSet
from waakhond.signals.base import ReferenceFace

if TYPE_CHECKING:
    from waakhond.consent.matcher import RegistryMatcher
    from waakhond.hashing.matcher import HashMatcher
    from waakhond.signals.prompt import PromptIntentDetector

log = logging.getLogger(__name__)
# Longer than any real prompt; a wall of text is refused rather than embedded.
MAX_PROMPT_CHARS = 10_000
# Content blocked with these labels is added to the own_removals bank: a re-upload is caught
# by its hash, before any model runs. Only images judged on their own count: the photo in a
# blocked edit request is usually an innocent picture of the person the request targets.
REMOVAL_LABELS = frozenset({"SEXUAL_MINOR", "NCII_REAL_PERSON"})


def default_detectors(settings: ScreeningSettings, matcher: HashMatcher | None = None,
                      registry_matcher: RegistryMatcher | None = None) -> list[Detector]:
    """The real detectors, in the order they must run (banks read the hashes, faces read
    NudeNet's face boxes, identities read the faces, the registry reads identities)."""
    from waakhond.signals.bank_match import BankMatchDetector
    from waakhond.signals.consent import RegistryMatchDetector
    from waakhond.signals.faces import FaceAgeDetector
    from waakhond.signals.hashes import HashDetector
    from waakhond.signals.identity import FaceIdentityDetector
    from waakhond.signals.nudity import NudeNetDetector, OpenNsfwDetector
    from waakhond.signals.provenance import C2paDetector

    threads = settings.model_threads
    banks: list[Detector] = [BankMatchDetector(matcher)] if matcher else []
    registry: list[Detector] = [RegistryMatchDetector(registry_matcher)] \
        if registry_matcher else []
    return [
        HashDetector(),
        *banks,
        C2paDetector(),
        NudeNetDetector(threads),
        OpenNsfwDetector(threads),
        FaceAgeDetector(threads),
        FaceIdentityDetector(),
        *registry,
    ]


class Screener:
    """Screens content and returns explained verdicts. Load once, call many times."""

    def __init__(
        self,
        settings: ScreeningSettings | None = None,
        detectors: Sequence[Detector] | None = None,
        prompt_detector: PromptIntentDetector | None = None,
        matcher: HashMatcher | None = None,
        registry_matcher: RegistryMatcher | None = None,
    ) -> None:
        self.settings = settings or ScreeningSettings.from_env()
        self.matcher = matcher
        self.registry_matcher = registry_matcher
        self._detectors = list(detectors) if detectors is not None else None
        self._prompt_detector = prompt_detector

    @property
    def detectors(self) -> list[Detector]:
        """The image detectors, loaded on first use (prompt-only users never pay for them)."""
        if self._detectors is None:
            self._detectors = default_detectors(self.settings, self.matcher,
                                                self.registry_matcher)
        return self._detectors

    @property
    def prompt_detector(self) -> PromptIntentDetector:
        """Loaded on first use: image-only users never pay for the text models."""
        if self._prompt_detector is None:
            from waakhond.signals.prompt import PromptIntentDetector

            self._prompt_detector = PromptIntentDetector(self.settings.model_threads)
        return self._prompt_detector

    def check_image(
        self,
        data: bytes,
        context: str | Context = Context.UPLOAD,
        country: str | None = None,
        source: str | None = None,
        prompt_labels: tuple[str, ...] = (),
    ) -> Verdict:
        """Screen image bytes. Raises InputError for unreadable input, UnknownCountry for a
        country code that does not exist; every other problem becomes a blocking verdict.
        For a generated image, ``prompt_labels`` are its prompt verdict's labels."""
        _image_context(context)  # refuse a wrong context or country before decoding
        normalise_country(country)
        started = time.perf_counter()
        image = decode_image(data, self.settings.intake)
        return self.check_decoded(image, context, country, source,
                                  intake_ms=_ms_since(started), prompt_labels=prompt_labels)

    def check_decoded(self, image: DecodedImage, context: str | Context = Context.UPLOAD,
                      country: str | None = None, source: str | None = None,
                      intake_ms: float = 0.0,
                      input_faces: tuple[ReferenceFace, ...] = (),
                      prompt_labels: tuple[str, ...] = ()) -> Verdict:
        """Screen an image that already passed intake, for callers that use its pixels
        afterwards (the gateway marks what it lets through) and should not decode twice.
        ``input_faces``: for an edit's output, the faces of its input photo (the verdict of
        the edit request has them), so the policy sees whether the output shows them.
        ``prompt_labels``: for a generated image, its prompt's labels (SUGGESTIVE,
        NUDITY_PRONE...), so the policy can be stricter where the prompt made nudity likely."""
        ctx = _image_context(context)
        code = normalise_country(country)
        policy = load_policy(code)
        timings = {"intake": intake_ms}
        return self._decide(ctx, code, policy, image, timings, source,
                            SignalSet(input_faces=input_faces, prompt_labels=prompt_labels))

    def check_prompt(
        self,
        text: str,
        image: bytes | None = None,
        country: str | None = None,
        source: str | None = None,
    ) -> Verdict:
        """Screen a prompt before anything is generated. With ``image`` it is an edit request:
        the photo is screened as an edit input and the policy judges both together."""
        code = normalise_country(country)
        policy = load_policy(code)
        _check_prompt_text(text)
        ctx = Context.EDIT_INPUT if image is not None else Context.PROMPT
        started = time.perf_counter()
        decoded = decode_image(image, self.settings.intake) if image is not None else None
        timings = {"intake": _ms_since(started)}
        signals = SignalSet()
        detector = self.prompt_detector  # loads the text models on first use, not timed
        started = time.perf_counter()
        try:
            signals.prompt = detector.run_text(text, has_image=image is not None)
        except Exception as exc:  # recorded; the policy blocks on any detector failure
            log.exception("prompt detector failed")
            signals.errors[detector.name] = f"{type(exc).__name__}: {exc}"[:500]
        signals.versions[detector.name] = detector.version
        timings[detector.name] = _ms_since(started)
        return self._decide(ctx, code, policy, decoded, timings, source, signals)

    def _decide(self, ctx: Context, code: str | None, policy: Policy,
                image: DecodedImage | None, timings: dict[str, float], source: str | None,
                signals: SignalSet) -> Verdict:
        try:
            if image is not None:
                self._run_detectors(image, ctx, policy, timings, signals)
            decision = policy.decide(signals, ctx)
            # A block that came from a bank match needs no copy: that bank catches re-uploads,
            # and a victim's withdrawal there must lift it.
            labels = set(decision.labels)
            if (ctx is not Context.PROMPT and signals.prompt is None and decision.action.blocks
                    and REMOVAL_LABELS & labels and "KNOWN_HASH" not in labels):
                self._remember_removal(signals, decision.reasons[0].rule_id)
        except Exception as exc:  # fail closed on anything we did not foresee
            log.exception("screening failed after intake")
            return _fail_closed(exc, ctx, code, policy, image, timings, source)
        return Verdict(
            action=decision.action,
            labels=decision.labels,
            reasons=decision.reasons,
            dsa=decision.dsa,
            policy_version=policy.version,
            jurisdiction=list(policy.layers),
            context=ctx,
            country=code,
            signals=signals.to_dict(),
            timings_ms=timings,
            image=image.info if image else None,
            source=source,
            reference_faces=signals.reference_faces() if ctx is Context.EDIT_INPUT else (),
        )

    def _remember_removal(self, signals: SignalSet, rule_id: str) -> None:
        if self.matcher and signals.hashes:
            self.matcher.record_removal(signals.hashes, rule_id)

    def check_file(self, path: str | Path, context: str | Context = Context.UPLOAD,
                   country: str | None = None) -> Verdict:
        file = Path(path)
        size, limit = file.stat().st_size, self.settings.intake.max_bytes
        if size > limit:  # refuse before reading it into memory
            raise InputTooLarge(f"the file is {size:,} bytes; the limit is {limit:,} bytes")
        data = file.read_bytes()
        return self.check_image(data, context=context, country=country, source=str(file))

    def _run_detectors(self, image: DecodedImage, context: Context, policy: Policy,
                       timings: dict[str, float], signals: SignalSet) -> None:
        for detector in self.detectors:
            if not self._wanted(detector, signals, context, policy):
                continue
            started = time.perf_counter()
            try:
                setattr(signals, detector.field, detector.run(image, signals))
            except Exception as exc:  # recorded; the policy blocks on any detector failure
                log.exception("detector %s failed", detector.name)
                signals.errors[detector.name] = f"{type(exc).__name__}: {exc}"[:500]
            signals.versions[detector.name] = detector.version
            timings[detector.name] = _ms_since(started)

    def _wanted(self, detector: Detector, signals: SignalSet, context: Context,
                policy: Policy) -> bool:
        return self.settings.cascade == "always" or policy.needs(detector.field, signals,
                                                                 context)


def _image_context(context: str | Context) -> Context:
    ctx = Context.parse(context)
    if ctx is Context.PROMPT:
        raise ValueError("the 'prompt' context is for check_prompt, not for images")
    return ctx


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _check_prompt_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise EmptyInput("the prompt is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputTooLarge(
            f"the prompt has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
        )


def _fail_closed(exc: Exception, context: Context, country: str | None, policy: Policy,
                 image: DecodedImage | None, timings: dict[str, float],
                 source: str | None) -> Verdict:
    reason = Reason(
        rule_id="system.internal_error",
        action=Action.BLOCK,
        text="Screening failed unexpectedly, so the content is blocked (fail closed).",
        evidence={"error": f"{type(exc).__name__}: {exc}"[:500]},
    )
    return Verdict(
        action=Action.BLOCK,
        labels=["SCREENING_INCOMPLETE"],
        reasons=[reason],
        dsa=None,
        policy_version=policy.version,
        jurisdiction=list(policy.layers),
        context=context,
        country=country,
        timings_ms=timings,
        image=image.info if image else None,
        source=source,
    )
