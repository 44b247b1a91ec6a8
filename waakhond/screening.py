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

from waakhond.config import ScreeningSettings
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.errors import InputTooLarge
from waakhond.intake import DecodedImage, decode_image
from waakhond.policy import Policy, load_policy, normalise_country
from waakhond.signals import Detector, SignalSet

log = logging.getLogger(__name__)


def default_detectors(settings: ScreeningSettings) -> list[Detector]:
    """The real detectors, in the order they must run (faces reads NudeNet's face boxes)."""
    from waakhond.signals.faces import FaceAgeDetector
    from waakhond.signals.hashes import HashDetector
    from waakhond.signals.nudity import NudeNetDetector, OpenNsfwDetector
    from waakhond.signals.provenance import C2paDetector

    threads = settings.model_threads
    return [
        HashDetector(),
        C2paDetector(),
        NudeNetDetector(threads),
        OpenNsfwDetector(threads),
        FaceAgeDetector(threads),
    ]


class Screener:
    """Screens content and returns explained verdicts. Load once, call many times."""

    def __init__(
        self,
        settings: ScreeningSettings | None = None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self.settings = settings or ScreeningSettings.from_env()
        self.detectors = list(detectors) if detectors is not None else default_detectors(
            self.settings
        )

    def check_image(
        self,
        data: bytes,
        context: str | Context = Context.UPLOAD,
        country: str | None = None,
        source: str | None = None,
    ) -> Verdict:
        """Screen image bytes. Raises InputError for unreadable input, UnknownCountry for a
        country code that does not exist; every other problem becomes a blocking verdict."""
        ctx = Context.parse(context)
        code = normalise_country(country)
        policy = load_policy(code)
        started = time.perf_counter()
        image = decode_image(data, self.settings.intake)
        timings = {"intake": _ms_since(started)}
        try:
            signals = self._run_detectors(image, ctx, policy, timings)
            decision = policy.decide(signals, ctx)
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
            image=image.info,
            source=source,
        )

    def check_file(self, path: str | Path, context: str | Context = Context.UPLOAD,
                   country: str | None = None) -> Verdict:
        file = Path(path)
        size, limit = file.stat().st_size, self.settings.intake.max_bytes
        if size > limit:  # refuse before reading it into memory
            raise InputTooLarge(f"the file is {size:,} bytes; the limit is {limit:,} bytes")
        data = file.read_bytes()
        return self.check_image(data, context=context, country=country, source=str(file))

    def _run_detectors(self, image: DecodedImage, context: Context, policy: Policy,
                       timings: dict[str, float]) -> SignalSet:
        signals = SignalSet()
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
        return signals

    def _wanted(self, detector: Detector, signals: SignalSet, context: Context,
                policy: Policy) -> bool:
        return self.settings.cascade == "always" or policy.needs(detector.field, signals,
                                                                 context)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _fail_closed(exc: Exception, context: Context, country: str | None, policy: Policy,
                 image: DecodedImage, timings: dict[str, float], source: str | None) -> Verdict:
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
        image=image.info,
        source=source,
    )
