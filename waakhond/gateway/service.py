"""The gateway: screen the request, call the generator, screen every output, mark what passes.

    prompt (+ input photo) -> policy -> generator -> each output -> policy -> watermark + C2PA

Fails closed: a detector error blocks (the policy sees it), an unreadable output is withheld,
a generator failure is an error, and the API refuses anything that runs past its time budget.
Nothing reaches the caller without a verdict that lets it through.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from waakhond.cases.decisions import AutomatedRestriction
from waakhond.core import Action, Context, Reason, Verdict
from waakhond.errors import InputError
from waakhond.gateway.access import (
    AccessDenied,
    ApiKeys,
    Caller,
    EndUsers,
    RateLimiter,
    Standing,
    Tier,
)
from waakhond.gateway.metrics import count_decision
from waakhond.gateway.records import (
    ContentToPreserve,
    DecisionLog,
    Generation,
    GenerationLog,
    Requester,
    Stage,
    new_reference,
)
from waakhond.gateway.upstream import ImageRequest, Upstream, UpstreamError
from waakhond.intake import DecodedImage, decode_image, sniff_type
from waakhond.provenance.marker import Marker
from waakhond.provenance.watermark import new_mark_id
from waakhond.screening import Screener
from waakhond.signals import SignalSet
from waakhond.signals.base import BankMatches
from waakhond.signals.hashes import HashDetector

log = logging.getLogger(__name__)
# Generated content nobody has seen yet is let through only on these; "review" is withheld,
# because a generation request cannot wait for a person.
PASSING = frozenset({Action.ALLOW, Action.AGE_RESTRICT})


@dataclass
class Blocked(Exception):
    """The request or all its outputs were refused by the policy."""

    reference: str
    request_id: str
    verdict: Verdict
    standing: Standing | None = None

    @property
    def reason(self) -> str:
        return self.verdict.reasons[0].text if self.verdict.reasons else "blocked by policy"

    def __str__(self) -> str:
        return f"{self.verdict.action.value}: {self.reason}"


class GatewayFailure(Exception):
    """The generator failed: nothing is returned. ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, code: str, status: int, request_id: str) -> None:
        super().__init__(message)
        self.code, self.status, self.request_id = code, status, request_id


@dataclass(frozen=True)
class ScreenResult:
    verdict: Verdict
    reference: str
    standing: Standing | None
    restriction: AutomatedRestriction | None = None  # for a restricted upload


@dataclass(frozen=True)
class MarkedOutput:
    data: bytes
    mime_type: str
    record_id: str
    verdict: Verdict


@dataclass(frozen=True)
class GenerationResult:
    request_id: str
    prompt_reference: str
    outputs: list[MarkedOutput]
    withheld: list[str] = field(default_factory=list)  # references of blocked outputs
    standing: Standing | None = None


@dataclass(frozen=True)
class Request:
    """Who is asking and where: the same for every kind of call."""

    caller: Caller
    end_user: str | None = None
    country: str | None = None

    def requester(self) -> Requester:
        return Requester(self.caller.key_id, self.end_user, self.country)


class Gateway:
    def __init__(self, screener: Screener, upstream: Upstream, marker: Marker,
                 decisions: DecisionLog, generations: GenerationLog, keys: ApiKeys,
                 users: EndUsers, limiter: RateLimiter | None = None) -> None:
        self.screener = screener
        self.upstream = upstream
        self.marker = marker
        self.decisions = decisions
        self.generations = generations
        self.keys = keys
        self.users = users
        self.limiter = limiter or RateLimiter()

    # -- screening for platforms ----------------------------------------------------------

    def screen_prompt(self, request: Request, text: str,
                      image: bytes | None = None) -> ScreenResult:
        self.users.admit(request.end_user)
        verdict = self.screener.check_prompt(text, image=image, country=request.country)
        content = _prompt_content(text, image)
        return self._judged(verdict, Stage.PROMPT, new_reference("req"), request, content)

    def screen_image(self, request: Request, data: bytes, context: str) -> ScreenResult:
        self.users.admit(request.end_user)
        verdict = self.screener.check_image(data, context=context, country=request.country)
        content = [ContentToPreserve(data, _mime_type(data))]
        return self._judged(verdict, Stage.IMAGE, new_reference("req"), request, content)

    def _judged(self, verdict: Verdict, stage: Stage, request_id: str, request: Request,
                content: list[ContentToPreserve]) -> ScreenResult:
        reference, restriction = self.decisions.record_restricting(
            verdict, stage, request_id, request.requester(), content)
        count_decision(stage.value, verdict)
        standing = None
        if _users_fault(verdict):
            standing = self.users.strike(request.end_user, verdict.action)
        return ScreenResult(verdict, reference, standing, restriction)

    # -- generation -----------------------------------------------------------------------

    def generate(self, request: Request, image_request: ImageRequest) -> GenerationResult:
        """Screen, generate, screen each output, mark. Raises Blocked, AccessDenied,
        GatewayFailure or InputError (a malformed input photo)."""
        standing = self.users.admit(request.end_user)
        request_id = new_reference("req")
        screened = self._judged(
            self.screener.check_prompt(image_request.prompt, image=image_request.image,
                                       country=request.country),
            Stage.PROMPT, request_id, request,
            _prompt_content(image_request.prompt, image_request.image))
        if screened.verdict.action not in PASSING:
            raise Blocked(screened.reference, request_id, screened.verdict, screened.standing)
        self._check_tier(request, image_request, screened.verdict, request_id)
        try:
            produced = self.upstream.create(image_request)
        except UpstreamError as exc:
            log.warning("upstream failed for %s: %s", request_id, exc)
            raise GatewayFailure(str(exc), "upstream_error", 502, request_id) from exc
        return self._screen_outputs(request, image_request, produced, request_id,
                                    screened, standing)

    def _check_tier(self, request: Request, image_request: ImageRequest, verdict: Verdict,
                    request_id: str) -> None:
        faces = verdict.signals.get("faces") or {}
        if not image_request.is_edit or not faces.get("faces"):
            return
        if self.users.tier(request.end_user) is Tier.VERIFIED:
            return
        refusal = _refusal("access.edit_person_unverified",
                           "Only verified users may edit photos that show a person.", verdict)
        self.decisions.record(refusal, Stage.ACCESS, request_id, request.requester())
        raise AccessDenied("only verified users may edit photos that show a person; the "
                           "platform can mark a user verified", "tier_not_allowed", 403)

    def _screen_outputs(self, request: Request, image_request: ImageRequest,
                        produced: list[bytes], request_id: str, prompt: ScreenResult,
                        standing: Standing | None) -> GenerationResult:
        outputs: list[MarkedOutput] = []
        withheld: list[ScreenResult] = []
        for data in produced:
            # An edit's outputs are compared with the faces of its input photo.
            verdict, image = self._screen_output(data, request.country, prompt.verdict)
            screened = self._judged(verdict, Stage.OUTPUT, request_id, request,
                                    [ContentToPreserve(data, _mime_type(data))])
            if image is not None and screened.verdict.action in PASSING:
                outputs.append(self._mark(image, screened.verdict, image_request, request,
                                          request_id))
            else:
                withheld.append(screened)
        if not outputs:
            if not withheld:
                raise GatewayFailure("the image generator returned no images", "upstream_error",
                                     502, request_id)
            worst = max(withheld, key=lambda s: s.verdict.action.severity)
            raise Blocked(worst.reference, request_id, worst.verdict,
                          worst.standing or standing)
        latest = next((s.standing for s in reversed(withheld) if s.standing), standing)
        return GenerationResult(request_id, prompt.reference, outputs,
                                [s.reference for s in withheld], latest)

    def _screen_output(self, data: bytes, country: str | None,
                       prompt: Verdict) -> tuple[Verdict, DecodedImage | None]:
        """The verdict, and the decoded image for marking (decoded once, used twice). The
        prompt's verdict brings the input photo's faces and the prompt's labels."""
        try:
            image = decode_image(data, self.screener.settings.intake)
        except InputError as exc:  # the generator sent something we cannot read: withheld
            return _refusal("system.unreadable_output",
                            f"The generator returned content that cannot be screened "
                            f"({exc.code}), so it is withheld.", None), None
        return self.screener.check_decoded(image, Context.GENERATED, country,
                                           input_faces=prompt.reference_faces,
                                           prompt_labels=tuple(prompt.labels)), image

    def _mark(self, image: DecodedImage, verdict: Verdict, image_request: ImageRequest,
              request: Request, request_id: str) -> MarkedOutput:
        record_id, mark_id = new_reference("gen"), new_mark_id()
        model = image_request.model or self.upstream.name
        marked = self.marker.mark(image, edit=image_request.is_edit, record_id=record_id,
                                  mark_id=mark_id, model=model)
        hashes: dict[str, Any] = verdict.signals.get("hashes") or {}
        self.generations.add(Generation(
            record_id=record_id, mark_id=mark_id, request_id=request_id,
            kind="edit" if image_request.is_edit else "generation", model=model,
            sha256=hashlib.sha256(marked.data).hexdigest(), pdq=hashes.get("pdq"),
            api_key_id=request.caller.key_id))
        return MarkedOutput(marked.data, marked.mime_type, record_id, verdict)

    def match(self, data: bytes) -> dict[str, Any]:
        """Hash an image and look it up in the banks: the hashes and matches together."""
        image = decode_image(data, self.screener.settings.intake)
        hashes = HashDetector().run(image, SignalSet())
        found = self.screener.matcher.match(hashes) if self.screener.matcher else BankMatches()
        return {"hashes": asdict(hashes), **asdict(found)}

    # -- provenance -----------------------------------------------------------------------

    def verify(self, data: bytes) -> dict[str, Any]:
        """Does this image carry our manifest or watermark, and which record is it from?"""
        report = self.marker.verify(decode_image(data, self.screener.settings.intake))
        record = (self.generations.find(record_id=report.manifest.record_id)
                  or self.generations.find(mark_id=report.watermark.mark_id))
        return {
            "synthetic": bool(report.manifest.ai_generated or record),
            "ours": record is not None,
            "record": record,
            "manifest": report.manifest.to_dict(),
            "watermark": report.watermark.to_dict(),
        }


def _prompt_content(text: str, image: bytes | None) -> list[ContentToPreserve]:
    content = [ContentToPreserve(text.encode(), "text/plain; charset=utf-8")]
    if image is not None:
        content.append(ContentToPreserve(image, _mime_type(image)))
    return content


def _mime_type(data: bytes) -> str:
    try:
        return sniff_type(data)[1]
    except InputError:  # preserved as it came: the authorities may still need it
        return "application/octet-stream"


def _users_fault(verdict: Verdict) -> bool:
    """A strike is for what the user asked for, never for our own failures."""
    return any(reason.action.blocks and not reason.rule_id.startswith("system.")
               for reason in verdict.reasons)


def _refusal(rule_id: str, text: str, like: Verdict | None) -> Verdict:
    """A blocking verdict the gateway itself makes (not the policy), in the same format."""
    reason = Reason(rule_id=rule_id, action=Action.BLOCK, text=text, evidence={})
    return Verdict(
        action=Action.BLOCK, labels=["SCREENING_INCOMPLETE"] if like is None else [],
        reasons=[reason], dsa=None,
        policy_version=like.policy_version if like else "",
        jurisdiction=like.jurisdiction if like else [],
        context=like.context if like else Context.GENERATED,
        country=like.country if like else None,
    )
