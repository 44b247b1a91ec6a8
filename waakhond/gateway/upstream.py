"""Image generators the gateway sits in front of.

- ``OpenAIUpstream``: any OpenAI-compatible images API (OpenAI, xAI, a local server), called
  with its own base URL and key.
- ``DemoUpstream``: draws harmless procedural pictures (gradients and shapes) so the service
  works offline on a laptop; an edit tints the input photo and draws shapes over a corner.

Both return raw image bytes; the gateway screens and marks them before anyone sees them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import numpy as np
from PIL import Image, ImageDraw

# The sizes OpenAI-compatible APIs accept; "auto" lets the generator choose.
SIZES = ("auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024",
         "1024x1792")
MAX_IMAGES = 10
DEMO_MODEL = "waakhond-demo"


class UpstreamError(Exception):
    """The generator failed or answered something we cannot use; nothing is passed on."""


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    n: int = 1
    size: str = "auto"
    model: str | None = None
    image: bytes | None = None  # the photo to edit; None for a new image
    mask: bytes | None = None
    # Other OpenAI parameters (quality, style, background, output_format...), passed on as is.
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_edit(self) -> bool:
        return self.image is not None


class Upstream(Protocol):
    name: str

    def create(self, request: ImageRequest) -> list[bytes]:
        """Generate (or, with ``request.image``, edit) ``request.n`` images."""
        ...


def parse_size(size: str, default: tuple[int, int] = (1024, 1024)) -> tuple[int, int]:
    if size == "auto":
        return default
    width, height = size.split("x")
    return int(width), int(height)


class DemoUpstream:
    """Harmless procedural images, deterministic per prompt, for offline use and tests."""

    name = DEMO_MODEL

    def create(self, request: ImageRequest) -> list[bytes]:
        width, height = parse_size(request.size)
        seed = int.from_bytes(hashlib.sha256(request.prompt.encode()).digest()[:8], "big")
        images = []
        for index in range(request.n):
            rng = random.Random(seed + index)
            if request.image is not None:
                picture = _tinted(request.image, (width, height), rng)
            else:
                picture = _gradient((width, height), rng)
            _draw_shapes(picture, rng, corner_only=request.image is not None)
            images.append(_png(picture))
        return images


def _gradient(size: tuple[int, int], rng: random.Random) -> Image.Image:
    width, height = size
    start = np.array([rng.randint(40, 215) for _ in range(3)], dtype=np.float32)
    end = np.array([rng.randint(40, 215) for _ in range(3)], dtype=np.float32)
    ramp = (np.arange(width, dtype=np.float32) / max(width - 1, 1))[None, :, None]
    wave = (np.sin(np.arange(height, dtype=np.float32) / 40.0) * 12.0)[:, None, None]
    pixels = start + (end - start) * ramp + wave
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _tinted(photo: bytes, size: tuple[int, int], rng: random.Random) -> Image.Image:
    with Image.open(io.BytesIO(photo)) as opened:
        picture = opened.convert("RGB").resize(size)
    tint = Image.new("RGB", size, tuple(rng.randint(60, 200) for _ in range(3)))
    return Image.blend(picture, tint, 0.25)


def _draw_shapes(picture: Image.Image, rng: random.Random, corner_only: bool) -> None:
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    span_x, span_y = (width // 4, height // 4) if corner_only else (width, height)
    for _ in range(6):
        x, y = rng.randrange(span_x), rng.randrange(span_y)
        radius = rng.randint(max(span_x // 20, 2), max(span_x // 6, 3))
        colour = tuple(rng.randint(30, 225) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        else:
            draw.rectangle((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)  # speed over size: it is re-encoded
    return out.getvalue()


class OpenAIUpstream:
    """An OpenAI-compatible images API. Asks for base64 answers and fetches URLs when a
    generator only gives those, so every byte is screened here."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float = 60.0,
                 client: httpx.Client | None = None) -> None:
        self.name = base_url
        self._base = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(headers=headers, timeout=timeout_s)

    def create(self, request: ImageRequest) -> list[bytes]:
        try:
            response = self._send(request)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the image generator did not answer: {type(exc).__name__}: "
                                f"{exc}") from exc
        if response.status_code != 200:
            raise UpstreamError(f"the image generator answered HTTP {response.status_code}: "
                                f"{response.text[:300]}")
        return self._images(response)

    def _send(self, request: ImageRequest) -> httpx.Response:
        fields: dict[str, Any] = {"prompt": request.prompt, "n": request.n, **request.options}
        if request.size != "auto":
            fields["size"] = request.size
        if request.model:
            fields["model"] = request.model
        if not request.is_edit:
            fields["response_format"] = "b64_json"
            return self._client.post(f"{self._base}/images/generations", json=fields)
        files = [("image", ("image.png", request.image or b"", "image/png"))]
        if request.mask is not None:
            files.append(("mask", ("mask.png", request.mask, "image/png")))
        data = {key: str(value) for key, value in fields.items()}
        data["response_format"] = "b64_json"
        return self._client.post(f"{self._base}/images/edits", data=data, files=files)

    def _images(self, response: httpx.Response) -> list[bytes]:
        try:
            items = response.json()["data"]
            return [self._image(item) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"the image generator's answer is not an images response: "
                                f"{exc}") from exc

    def _image(self, item: dict[str, Any]) -> bytes:
        if item.get("b64_json"):
            return base64.b64decode(item["b64_json"], validate=True)
        if item.get("url"):
            fetched = self._client.get(item["url"])
            if fetched.status_code != 200:
                raise UpstreamError(f"fetching a generated image gave HTTP "
                                    f"{fetched.status_code}")
            return fetched.content
        raise UpstreamError("a generated image has neither b64_json nor url")
