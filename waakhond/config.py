"""Settings for screening, with defaults that are safe on a laptop.

Every limit can be set through an environment variable (``WAAKHOND_<NAME>``) so a deployment
changes them without code; the defaults and their reasons are documented in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

Cascade = Literal["auto", "always"]


@dataclass(frozen=True)
class IntakeLimits:
    # 50 MB holds any real photo; larger uploads are refused before we read them into models.
    max_bytes: int = 50 * 1024 * 1024
    # 50 megapixels: a 8660 x 5773 photo. A decompression bomb claims far more in its header.
    max_pixels: int = 50_000_000
    # No real image is longer than this on one side; absurd strips are hostile.
    max_side: int = 30_000
    # Animated images: refuse absurd frame counts, screen an even sample of frames.
    max_frames: int = 10_000
    frames_to_screen: int = 8


@dataclass(frozen=True)
class ScreeningSettings:
    intake: IntakeLimits = IntakeLimits()
    # "auto": the policy decides which costly detectors an image needs (face and age
    # estimation after a nudity signal or for an edit input; the whole-image NSFW score once
    # the region detector sees any body part). "always": every detector on every image.
    cascade: Cascade = "auto"
    # ONNX Runtime threads per model session; 1 when several worker processes share the cores.
    model_threads: int = 2

    @classmethod
    def from_env(cls, **overrides: object) -> ScreeningSettings:
        limits = {
            f.name: int(os.environ[f"WAAKHOND_{f.name.upper()}"])
            for f in fields(IntakeLimits)
            if f"WAAKHOND_{f.name.upper()}" in os.environ
        }
        values: dict[str, object] = {"intake": IntakeLimits(**limits)}
        cascade = os.environ.get("WAAKHOND_CASCADE")
        if cascade:
            if cascade not in ("auto", "always"):
                raise ValueError("WAAKHOND_CASCADE must be 'auto' or 'always'")
            values["cascade"] = cascade
        if "WAAKHOND_MODEL_THREADS" in os.environ:
            values["model_threads"] = int(os.environ["WAAKHOND_MODEL_THREADS"])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GatewaySettings:
    """The HTTP service. Every value has a ``WAAKHOND_<NAME>`` variable (README)."""

    # An OpenAI-compatible images API; empty means the built-in demo generator (offline).
    upstream_url: str = ""
    upstream_key: str = ""
    # Generators can take a minute for a large image; longer means they are stuck.
    upstream_timeout_s: float = 120.0
    # The whole request, screening included. Past it the request is refused (fail closed):
    # nothing unscreened is ever returned.
    request_budget_s: float = 180.0
    # A Fernet key: when set, reported content is preserved encrypted for the authorities.
    evidence_key: str = ""
    # A deployment's own C2PA signing chain (leaf first) and key, PEM. Without them a
    # development CA is generated under the data folder on first run, labelled as such.
    c2pa_cert_chain: str = ""
    c2pa_private_key: str = ""
    # Generated images served for ``response_format=url`` are deleted after this long.
    output_retention_s: int = 3600
    # Where the platform receives restrictions, restorations and decision notices (signed
    # with the secret, HMAC-SHA256). Empty: events wait in the outbox until it is set.
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout_s: float = 10.0
    # The Commission's Transparency Database API and the platform's token. Empty: statements
    # of reasons wait in the outbox until it is set.
    transparency_db_url: str = ""
    transparency_db_token: str = ""
    # How often the outboxes (webhooks, statements) are sent.
    delivery_interval_s: float = 2.0
    # NCMEC's CyberTipline (https://report.cybertip.org/ispws; exttest.cybertip.org to test)
    # with the account NCMEC issues; the reporter's e-mail is required in every report.
    cybertipline_url: str = ""
    cybertipline_user: str = ""
    cybertipline_password: str = ""
    cybertipline_reporter_email: str = ""
    # A US provider must report child sexual abuse to NCMEC wherever it happened.
    report_csam_to_ncmec: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> GatewaySettings:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"WAAKHOND_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(raw, type(getattr(cls, f.name)))
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _parse(raw: str, kind: type) -> object:
    if kind is bool:  # bool("false") would be True
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
            raise ValueError(f"expected true or false, not {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    return kind(raw)


def data_folder() -> Path:
    """Where the embedded database, the development CA and served outputs live."""
    folder = Path(os.environ.get("WAAKHOND_DATA", "data"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
