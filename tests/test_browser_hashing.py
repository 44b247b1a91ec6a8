"""On-device hashing (waakhond/web/static/hashing.js) in real Chromium, checked against Python.

The portal hashes a victim's image in the browser so the image never has to leave the device;
those hashes are only useful if they match what the gateway computes on the same file:
MD5 and SHA-256 exactly, PDQ within the match distance of hash exchanges. The pages, the
script and the images are served from a loopback server started here; nothing else is reached.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pdqhash
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests import images
from tests.browser import chromium, screenshot
from waakhond.intake import decode_image
from waakhond.signals.hashes import pdq_hex

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "waakhond" / "web" / "static"
FIXTURES = Path(__file__).resolve().parent / "web_fixtures"
# The shared development data sits beside the repository (in CI as here).
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"

# Hash exchanges call two PDQ hashes a match up to about 31 bits apart; the portal's hashes
# must stay far inside that, so a decoder difference never decides a match.
MAX_PDQ_DISTANCE = 10
# Below this quality PDQ itself says the hash is unreliable (flat or tiny images).
MIN_QUALITY = 80
# The quality metric truncates hundreds of small gradients, so one decoder's rounding can
# move it by a point or two; more than this would mean a different 64 x 64 image.
QUALITY_TOLERANCE = 3

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".jpg": "image/jpeg", ".png": "image/png"}


# ---------------------------------------------------------------------------------------
# The loopback server and the page
# ---------------------------------------------------------------------------------------


ROOTS = {"static": STATIC, "fixtures": FIXTURES, "faces": FACES}
MEMORY: dict[str, bytes] = {}  # name -> bytes made in a test, served at /mem/<name>


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET only: /static/, /fixtures/ and /faces/ from disk, /mem/ from bytes made in the test."""

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._find(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type",
                         CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _find(self, path: str) -> bytes | None:
        kind, _, rest = path.lstrip("/").partition("/")
        if kind == "mem":
            return MEMORY.get(rest)
        root = ROOTS.get(kind)
        if root is None:
            return None
        file = (root / rest).resolve()
        if not file.is_file() or not file.is_relative_to(root.resolve()):
            return None
        return file.read_bytes()

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        MEMORY.clear()


def serve(name: str, data: bytes) -> str:
    """Serve bytes made in the test at /mem/<name>; returns the path to fetch."""
    MEMORY[name] = data
    return f"/mem/{name}"


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 800, "height": 600})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server}/fixtures/hashing.html")
        page.wait_for_function("window.hashingReady === true", timeout=10_000)
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def reference_pdq(data: bytes) -> tuple[str, int]:
    """PDQ as the gateway computes it: the project's decode (EXIF-upright RGB), then pdqhash."""
    rgb = decode_image(data).first.rgb
    bits, quality = pdqhash.compute(rgb)
    return pdq_hex(np.asarray(bits)), int(quality)


def png_bytes(pixels: np.ndarray) -> bytes:
    return images.encode(Image.fromarray(pixels, "RGB"), "PNG")


def smooth_pattern(width: int, height: int) -> np.ndarray:
    """A soft colour pattern with some noise: a photo-like image with a well-spread DCT."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 127 + 90 * np.sin(x / 23.0) * np.cos(y / 31.0) + 30 * np.sin((x + y) / 9.0)
    rgb = np.stack([base, 0.6 * base + 40, 255 - base], axis=-1)
    rng = np.random.default_rng(width * 10_000 + height)
    return np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# MD5 and SHA-256
# ---------------------------------------------------------------------------------------


def test_md5_and_sha256_match_hashlib(page: Page):
    rng = np.random.default_rng(3)
    # 0 bytes; around the 56-byte padding limit and the 64-byte block; several blocks; 1 MB.
    sizes = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200, 4096 + 7, 1_000_003]
    files = {f"bytes-{n}.bin": rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes}
    files["text.txt"] = b"The quick brown fox jumps over the lazy dog"
    urls = {serve(name, data): data for name, data in files.items()}

    results = page.evaluate("urls => Promise.all(urls.map(window.digestUrl))", list(urls))

    for result in results:
        data = urls[result["url"]]
        assert result["size"] == len(data)
        assert result["md5"] == hashlib.md5(data).hexdigest(), f"MD5 of {len(data)} bytes"
        assert result["sha256"] == hashlib.sha256(data).hexdigest(), f"SHA-256 of {len(data)}"


# ---------------------------------------------------------------------------------------
# PDQ on synthetic images: lossless files decode to the same pixels everywhere
# ---------------------------------------------------------------------------------------


SYNTHETIC_SIZES = [(64, 64), (5, 5), (4, 40), (100, 37), (257, 129), (640, 480), (1500, 1001)]


def test_pdq_is_bit_exact_on_lossless_images(page: Page):
    """With the decoder out of the picture (PNG), the port must agree to the last bit: same
    float32 arithmetic, same median, same bit order. Includes the 64 x 64 shortcut and the
    all-zero hash below 5 pixels."""
    rng = np.random.default_rng(11)
    cases = {}
    for width, height in SYNTHETIC_SIZES:
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for kind, pixels in (("noise", noise), ("pattern", smooth_pattern(width, height))):
            data = png_bytes(pixels)
            cases[serve(f"{kind}-{width}x{height}.png", data)] = reference_pdq(data)

    results = page.evaluate("urls => window.hashUrls(urls)", list(cases))

    mismatches = [(r["url"], r.get("error") or (r["pdq"], r["quality"]), cases[r["url"]])
                  for r in results if (r.get("pdq"), r.get("quality")) != cases[r["url"]]]
    assert not mismatches, f"JS != Python on identical pixels: {mismatches}"


def test_pdq_turns_the_image_upright_by_exif_orientation_as_the_gateway_does(page: Page):
    """The gateway hashes the EXIF-upright image (exif_transpose); the browser must too."""
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = images.ROTATED_90_CW
    stored = Image.fromarray(smooth_pattern(320, 200), "RGB")
    data = images.encode(stored, "JPEG", quality=92, exif=exif.tobytes())
    upright, _ = reference_pdq(data)
    as_stored = pdq_hex(np.asarray(pdqhash.compute(np.asarray(stored))[0]))
    assert hamming(upright, as_stored) > 3 * MAX_PDQ_DISTANCE  # the orientation matters here

    result = page.evaluate("url => window.hashUrl(url)", serve("rotated.jpg", data))

    assert hamming(result["pdq"], upright) <= MAX_PDQ_DISTANCE


def test_hash_file_gives_the_portal_record(page: Page):
    data = png_bytes(smooth_pattern(300, 220))
    expected_pdq, expected_quality = reference_pdq(data)

    record = page.evaluate("url => window.hashUrlAsFile(url, 'photo.png')",
                           serve("record.png", data))
    not_an_image = page.evaluate("url => window.hashUrlAsFile(url, 'notes.txt')",
                                 serve("notes.txt", b"not an image"))

    assert record == {"name": "photo.png", "size": len(data),
                      "md5": hashlib.md5(data).hexdigest(),
                      "sha256": hashlib.sha256(data).hexdigest(),
                      "pdq": expected_pdq, "quality": expected_quality}
    # A file the browser cannot decode still gets its byte hashes.
    assert not_an_image["md5"] == hashlib.md5(b"not an image").hexdigest()
    assert (not_an_image["pdq"], not_an_image["quality"]) == (None, None)


# ---------------------------------------------------------------------------------------
# PDQ on real photos: Chromium's JPEG decoder against Pillow's
# ---------------------------------------------------------------------------------------


def test_pdq_agrees_with_the_gateway_on_every_face_photo(page: Page):
    if not FACES.is_dir():
        pytest.skip(f"the shared face photos are not here ({FACES})")
    files = sorted(p for p in FACES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        pytest.skip(f"no images in {FACES}")
    urls = {"/faces/" + quote(p.relative_to(FACES).as_posix()): p for p in files}

    started = time.monotonic()
    # Two at a time: one decodes while the other hashes, without flooding a small machine.
    results = page.evaluate("urls => window.hashUrls(urls, 2)", list(urls))
    browser_seconds = time.monotonic() - started
    failed = [(r["url"], r["error"]) for r in results if "error" in r]
    assert not failed, f"the browser could not hash: {failed}"

    rows = []
    for result in results:
        data = urls[result["url"]].read_bytes()
        pdq, quality = reference_pdq(data)
        assert result["md5"] == hashlib.md5(data).hexdigest()
        rows.append((result["url"], hamming(result["pdq"], pdq), quality, result["quality"]))

    good = [row for row in rows if row[2] >= MIN_QUALITY]
    distances = [distance for _, distance, _, _ in good]
    worst = max(good, key=lambda row: row[1])
    quality_off = [row for row in rows if abs(row[2] - row[3]) > QUALITY_TOLERANCE]
    summary = (f"{len(good)} of {len(rows)} images have quality >= {MIN_QUALITY}; "
               f"Hamming distance JS vs Python: max {max(distances)} ({worst[0]}), "
               f"mean {statistics.mean(distances):.2f}, "
               f"exact {distances.count(0)}; quality off by > {QUALITY_TOLERANCE}: "
               f"{len(quality_off)}; browser {browser_seconds:.1f} s")
    passed = max(distances) <= MAX_PDQ_DISTANCE and not quality_off
    page.evaluate("([title, passed, rows]) => window.renderSummary(title, passed, rows)", [
        "PDQ in Chromium vs the gateway (pdqhash on Pillow's decode)", passed, [
            ["images hashed", len(rows)],
            [f"with reference quality >= {MIN_QUALITY}", len(good)],
            ["max Hamming distance", f"{max(distances)} (limit {MAX_PDQ_DISTANCE})"],
            ["mean Hamming distance", f"{statistics.mean(distances):.2f}"],
            ["identical hashes", distances.count(0)],
            ["distance <= 2", sum(d <= 2 for d in distances)],
            [f"quality off by > {QUALITY_TOLERANCE}", len(quality_off)],
            ["max quality difference", max(abs(q - js) for _, _, q, js in rows)],
            ["browser time", f"{browser_seconds:.1f} s on {os.cpu_count()} cores"],
        ]])
    screenshot(page, "hashing-agreement")

    assert max(distances) <= MAX_PDQ_DISTANCE, summary
    assert not quality_off, f"{summary}: {quality_off[:10]}"
