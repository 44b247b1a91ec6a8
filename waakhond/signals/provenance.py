"""C2PA provenance: does the image carry a manifest, and does it declare AI generation?

A manifest is a claim by whoever signed it, not proof; the policy only uses it to pick the
"deepfake" DSA keywords, never to allow something it would otherwise restrict.
"""

from __future__ import annotations

import io
import json
from typing import Any

import c2pa

from waakhond.intake import DecodedImage
from waakhond.signals.base import Provenance, SignalSet, package_version

# IPTC digital source types that mean "made or changed by a generative model".
AI_SOURCE_TYPES = frozenset(
    f"http://cv.iptc.org/newscodes/digitalsourcetype/{name}"
    for name in (
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
    )
)
_ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")


class C2paDetector:
    name = "provenance"
    field = "provenance"

    def __init__(self) -> None:
        self.version = f"c2pa-python-{package_version('c2pa-python')}"

    def run(self, image: DecodedImage, earlier: SignalSet) -> Provenance:
        try:
            with c2pa.Reader(image.info.mime_type, io.BytesIO(image.data)) as reader:
                store = json.loads(reader.json())
                state = reader.get_validation_state()
        except c2pa.C2paError as exc:
            if "ManifestNotFound" in type(exc).__name__ or "JUMBF" in str(exc):
                return Provenance(manifest_present=False, ai_generated=False)
            # A broken manifest is worth recording but is not a reason to fail screening.
            return Provenance(manifest_present=True, ai_generated=False, error=str(exc)[:300])
        return _summarise(store, str(state) if state is not None else None)


def _summarise(store: dict[str, Any], state: str | None) -> Provenance:
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    source_types = [
        action.get("digitalSourceType")
        for assertion in manifest.get("assertions", [])
        if assertion.get("label") in _ACTIONS_LABELS
        for action in assertion.get("data", {}).get("actions", [])
    ]
    ai_types = [t for t in source_types if t in AI_SOURCE_TYPES]
    generators = manifest.get("claim_generator_info") or [{}]
    return Provenance(
        manifest_present=bool(manifest),
        ai_generated=bool(ai_types),
        digital_source_type=(ai_types or [t for t in source_types if t] or [None])[0],
        claim_generator=generators[0].get("name") or manifest.get("claim_generator"),
        validation_state=state,
    )
