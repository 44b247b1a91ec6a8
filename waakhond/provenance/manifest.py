"""Signed C2PA manifests that declare an image AI-generated (EU AI Act Art. 50), and reading them.

A new image gets the action ``c2pa.created`` with the IPTC source type trainedAlgorithmicMedia;
an edit gets ``c2pa.opened`` then ``c2pa.edited`` with compositeWithTrainedAlgorithmicMedia.
c2pa-python refuses ``c2pa.opened`` without an ingredient, and the user's photo must never go
into the manifest, so the edited photo is an ingredient described by a title alone: no bytes,
no hash, no thumbnail. Thumbnails are switched off altogether, which also keeps signing fast.
Our own assertion carries the id of the generation record, so a check can find it later.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

import c2pa

from waakhond.provenance.certificates import SigningIdentity
from waakhond.signals.base import package_version

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_GENERATED = _IPTC + "trainedAlgorithmicMedia"
DIGITAL_SOURCE_EDIT = _IPTC + "compositeWithTrainedAlgorithmicMedia"
# IPTC digital source types that mean "made or changed by a generative model".
AI_SOURCE_TYPES = frozenset(
    _IPTC + name
    for name in (
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
    )
)
GENERATION_ASSERTION = "org.waakhond.generation"
SIGNABLE_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})

_ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")
_PARENT_LABEL = "c2pa.ingredient.v3"
_PARENT_INGREDIENT = {"title": "image supplied by the user (not included)",
                     "relationship": "parentOf", "label": _PARENT_LABEL}
_GENERATOR_OUTPUT = {"title": "the generator's output, with its own manifest",
                     "relationship": "componentOf"}
# A thumbnail is a small copy of the picture inside the manifest: for an edit, one derived from
# the user's own photo. It is also most of the cost (measured ~55 ms and ~170 KB at 1024 px).
_SIGNING_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}
_ERROR_CHARS = 300
# How c2pa-rs words (as a generic "Other" error) a file that is not the image it claims to be.
_UNPARSEABLE_ASSET = "asset could not be parsed"


@dataclass(frozen=True)
class ManifestReading:
    """What an image's C2PA manifest says. Everything in it is a claim unless ``trusted``."""

    present: bool
    ai_generated: bool = False
    digital_source_type: str | None = None
    record_id: str | None = None  # from our own assertion; None when the manifest is not ours
    claim_generator: str | None = None
    validation_state: str | None = None  # "Invalid", "Valid" or "Trusted"
    trusted: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ManifestSigner:
    """Embeds signed manifests; one instance serves every request and every thread.

    No lock: c2pa-python guards its Signer and Context for concurrent shared use itself (and
    tests/test_manifest.py signs from several threads at once); each call has its own Builder.
    """

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity
        self._version = package_version("waakhond")
        self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            alg=c2pa.C2paSigningAlg[identity.algorithm],
            sign_cert=identity.chain_pem.encode(),
            private_key=identity.key_pem.encode(),
            ta_url=None,  # no timestamp authority: none is reachable offline
        ))
        self._context = c2pa.Context.from_dict(_SIGNING_SETTINGS)

    def sign(self, data: bytes, mime_type: str, *, edit: bool, record_id: str,
             generator: str = "waakhond", model: str | None = None,
             generator_output: tuple[bytes, str] | None = None) -> bytes:
        """The same image with a signed manifest declaring it AI-generated (``edit``: AI-edited).

        ``generator_output``: the image as the generator delivered it (bytes, MIME type) when
        it carried a manifest of its own. Marking must not strip an existing marking (the EU
        Code of Practice), and c2pa-python keeps an earlier manifest only as an ingredient, so
        it becomes a ``componentOf`` ingredient of ours.

        Raises ValueError for a type other than JPEG, PNG or WebP, and c2pa.C2paError when the
        library cannot sign these bytes (e.g. they are not the type named).
        """
        if mime_type not in SIGNABLE_MIME_TYPES:
            raise ValueError(f"cannot sign {mime_type!r}: only {sorted(SIGNABLE_MIME_TYPES)}")
        definition = {
            "claim_generator_info": [{"name": generator, "version": self._version}],
            "ingredients": [_PARENT_INGREDIENT] if edit else [],
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": _actions(edit, model)}},
                {"label": GENERATION_ASSERTION, "data": {
                    "record_id": record_id, "development_key": self.identity.development}},
            ],
        }
        output = io.BytesIO()
        # A Builder signs once, so each call makes its own; the Signer and settings are shared.
        with c2pa.Builder(definition, context=self._context) as builder:
            if generator_output is not None:
                original, original_type = generator_output
                builder.add_ingredient(_GENERATOR_OUTPUT, original_type, io.BytesIO(original))
            builder.sign(self._signer, mime_type, io.BytesIO(data), output)
        return output.getvalue()

    def close(self) -> None:
        self._signer.close()
        self._context.close()

    def __enter__(self) -> ManifestSigner:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _actions(edit: bool, model: str | None) -> list[dict[str, Any]]:
    agent = {"softwareAgent": {"name": model}} if model else {}
    if not edit:
        return [{"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_GENERATED, **agent}]
    return [
        {"action": "c2pa.opened", "parameters": {"ingredientIds": [_PARENT_LABEL]}},
        {"action": "c2pa.edited", "digitalSourceType": DIGITAL_SOURCE_EDIT, **agent},
    ]


def read_manifest(data: bytes, mime_type: str,
                  trust_anchors_pem: str | None = None) -> ManifestReading:
    """Read and validate an image's manifest; never raises for a missing or damaged one.

    ``trust_anchors_pem``: root certificates whose signers count as "Trusted". A malformed one
    raises c2pa.C2paError: that is the caller's configuration, not the image.
    """
    context = _reading_context(trust_anchors_pem)
    try:
        with c2pa.Reader(mime_type, io.BytesIO(data), context=context) as reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError.ManifestNotFound:
        return ManifestReading(present=False)
    except c2pa.C2paError as exc:
        # A file the library cannot take apart says nothing about a manifest; a manifest it
        # cannot verify still shows someone marked the image. Either is recorded, not raised.
        return ManifestReading(present=not _unreadable_file(exc), error=str(exc)[:_ERROR_CHARS])
    return _summarise(store, state)


def _unreadable_file(error: c2pa.C2paError) -> bool:
    return (isinstance(error, c2pa.C2paError.NotSupported | c2pa.C2paError.Io)
            or _UNPARSEABLE_ASSET in str(error))


@lru_cache(maxsize=8)
def _reading_context(trust_anchors_pem: str | None) -> c2pa.Context | None:
    """Reader settings per set of anchors, parsed once; None means the library's defaults."""
    if trust_anchors_pem is None:
        return None
    return c2pa.Context.from_dict({"trust": {"trust_anchors": trust_anchors_pem}})


def _summarise(store: dict[str, Any], state: str | None) -> ManifestReading:
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    assertions = manifest.get("assertions", [])
    source_types = [
        action.get("digitalSourceType")
        for assertion in assertions
        if assertion.get("label") in _ACTIONS_LABELS
        for action in assertion.get("data", {}).get("actions", [])
    ]
    ai_types = [t for t in source_types if t in AI_SOURCE_TYPES]
    generation = next((a.get("data", {}) for a in assertions
                       if a.get("label") == GENERATION_ASSERTION), {})
    record_id = generation.get("record_id")
    generators = manifest.get("claim_generator_info") or [{}]
    return ManifestReading(
        present=bool(manifest),
        ai_generated=bool(ai_types),
        digital_source_type=(ai_types or [t for t in source_types if t] or [None])[0],
        record_id=record_id if isinstance(record_id, str) else None,
        claim_generator=generators[0].get("name") or manifest.get("claim_generator"),
        validation_state=state,
        trusted=state == "Trusted",
    )
