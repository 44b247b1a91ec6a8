"""How robust PDQ perceptual-hash matching is to common image transforms, and how often
distinct images collide.

Originals are the harmless face photos in shared/data/faces (fairface/ and deepface/) plus
procedurally generated harmless synthetic images (gradients, shapes, rings, stripes, smooth
blobs; no text). Every original goes through the project's decoder (EXIF orientation applied)
and is hashed with PDQ at full resolution, as the screener does. Each original is then
transformed in memory with Pillow (JPEG re-encoding, resizing, cropping, rotation, mirroring,
greyscale, a border, a caption, brighter) and the transformed image is hashed again.

Matching follows the project's bank lookup: a query matches when the Hamming distance is at
most 31 of 256 bits, and hashes with PDQ quality below 50 are ignored (such originals and
transformed images are excluded and counted). The "dihedral" query is the banks' query: it matches
when ANY of the 8 dihedral hashes of the transformed image, or of the picture inside its solid
border if it has one, is within 31 of the original's PDQ; the "plain" query uses only the
ordinary PDQ hash. False matches are counted over all pairs of distinct originals.

Run from the repository root (the Markdown report goes to stdout, progress to stderr):

    .venv/bin/python bench/hash_robustness.py [--limit N] [--workers 2]
        [--out bench/out/hash_robustness.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps
from throughput import colour, gradient  # the same synthetic images as the throughput bench

from waakhond.intake.image import Frame, decode_image
from waakhond.signals.hashes import pdq_hashes, pdq_hex

# The shared development data sits beside the repository (shared/data/SOURCES.md).
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
FACE_FOLDERS = ("deepface", "fairface")
MATCH_DISTANCE = 31
MIN_QUALITY = 50
ORIGINAL_JPEG_QUALITY = 95  # synthetic originals are stored as JPEG like an uploaded file
SYNTHETIC_SIZES = ((1024, 768), (768, 1024), (800, 800), (1280, 720))
CAPTION = "Summer holiday 2025 - best day ever!"
CAPTION_HEIGHT = 0.07  # caption font size as a share of the image height
BORDER_COLOUR = (0, 0, 0)
CLOSEST = 10  # closest pairs of distinct originals to list, matching or not

Rng = np.random.Generator
Source = tuple[str, str]  # ("file", path) or ("synthetic", index)
Transform = Callable[[Image.Image], Image.Image]


# --- synthetic harmless images ---------------------------------------------------------


def _shapes(rng: Rng, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 30))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        if rng.integers(0, 2):
            draw.ellipse((x0, y0, x1, y1), fill=colour(rng))
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour(rng))
    return image


def _rings(rng: Rng, width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    radius = np.hypot(x - cx, y - cy)
    wave = (np.sin(radius / rng.uniform(8, 60)) + 1) / 2
    start, end = np.array(colour(rng)), np.array(colour(rng))
    return Image.fromarray((start * (1 - wave[..., None]) + end * wave[..., None]).astype(np.uint8))


def _stripes(rng: Rng, width: int, height: int) -> Image.Image:
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:height, 0:width]
    bands = ((np.cos(angle) * x + np.sin(angle) * y) // rng.uniform(20, 120)).astype(int) % 3
    palette = np.array([colour(rng) for _ in range(3)], np.uint8)
    return Image.fromarray(palette[bands])


def _blobs(rng: Rng, width: int, height: int) -> Image.Image:
    coarse = Image.fromarray(rng.integers(0, 256, (height // 128, width // 128, 3), np.uint8))
    return coarse.resize((width, height), Image.Resampling.BICUBIC)


SYNTHETIC: tuple[Callable[[Rng, int, int], Image.Image], ...] = (
    gradient, _shapes, _rings, _stripes, _blobs,
)


def synthetic_image(index: int) -> tuple[str, Image.Image]:
    rng = np.random.default_rng(1000 + index)
    kind = SYNTHETIC[index % len(SYNTHETIC)]
    width, height = SYNTHETIC_SIZES[int(rng.integers(0, len(SYNTHETIC_SIZES)))]
    return f"synthetic/{index:03d}{kind.__name__}.jpg", kind(rng, width, height)


# --- transforms (bench/watermark.py uses them too) ---------------------------------------


def redecode(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.fromarray(decode_image(buffer.getvalue()).first.rgb)


def jpeg(quality: int) -> Transform:
    return lambda image: redecode(image, quality)


def resize(scale: float) -> Transform:
    def apply(image: Image.Image) -> Image.Image:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.LANCZOS)
    return apply


def crop(total: float) -> Transform:
    """Remove `total` of the width and of the height, half from each side."""
    def apply(image: Image.Image) -> Image.Image:
        dx, dy = round(image.width * total / 2), round(image.height * total / 2)
        return image.crop((dx, dy, image.width - dx, image.height - dy))
    return apply


def _border(total: float) -> Transform:
    """Grow the width and the height by `total`, half on each side, in a solid colour."""
    def apply(image: Image.Image) -> Image.Image:
        dx, dy = round(image.width * total / 2), round(image.height * total / 2)
        return ImageOps.expand(image, (dx, dy, dx, dy), fill=BORDER_COLOUR)
    return apply


def _caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(8, round(image.height * CAPTION_HEIGHT)))
    while draw.textlength(CAPTION, font=font) > 0.9 * image.width and font.size > 8:
        font = ImageFont.load_default(size=font.size - 1)
    left, top, right, bottom = draw.textbbox((0, 0), CAPTION, font=font)
    x = (image.width - (right - left)) / 2 - left
    y = image.height - (bottom - top) - round(0.04 * image.height) - top
    stroke = max(1, round(font.size / 12))
    draw.text((x, y), CAPTION, font=font, fill="white", stroke_width=stroke, stroke_fill="black")
    return out


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def _brighter(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.3)


TRANSFORMS: dict[str, Transform] = {
    "jpeg_q50": jpeg(50),
    "jpeg_q30": jpeg(30),
    "resize_0.5": resize(0.5),
    "resize_0.25": resize(0.25),
    "crop_5pct": crop(0.05),
    "crop_10pct": crop(0.10),
    "rotate_90": lambda image: image.transpose(Image.Transpose.ROTATE_90),
    "mirror": ImageOps.mirror,
    "grayscale": _grey,
    "border_10pct": _border(0.10),
    "text_overlay": _caption,
    "brightness_+30pct": _brighter,
}

DEFINITIONS = {
    "jpeg_q50": "re-encode as JPEG quality 50 (Pillow), decode with the project's decoder",
    "jpeg_q30": "re-encode as JPEG quality 30 (Pillow), decode with the project's decoder",
    "resize_0.5": "both sides x0.5 (Lanczos)",
    "resize_0.25": "both sides x0.25 (Lanczos)",
    "crop_5pct": "centre crop removing 5% of width and 5% of height in total "
                 "(2.5% from each side), keeping the central 95% x 95%",
    "crop_10pct": "centre crop removing 10% of width and 10% of height in total "
                  "(5% from each side), keeping the central 90% x 90%",
    "rotate_90": "rotate 90 degrees counter-clockwise (lossless transpose)",
    "mirror": "flip left-right",
    "grayscale": "convert to 8-bit grey, back to RGB",
    "border_10pct": "solid black border growing width and height by 10% in total "
                    "(5% of the width left and right, 5% of the height top and bottom)",
    "text_overlay": f"caption '{CAPTION}' in Pillow's default font (load_default, about 7% "
                    "of the image height, white with black outline) centred across the bottom",
    "brightness_+30pct": "ImageEnhance.Brightness factor 1.3",
}


# --- hashing (runs in worker processes) ------------------------------------------------


def _load(source: Source) -> tuple[str, Image.Image]:
    kind, ident = source
    if kind == "file":
        path = Path(ident)
        rgb = decode_image(path.read_bytes()).first.rgb
        return f"{path.parent.name}/{path.name}", Image.fromarray(rgb)
    name, image = synthetic_image(int(ident))
    return name, redecode(image, ORIGINAL_JPEG_QUALITY)


def _dihedral(image: Image.Image) -> tuple[np.ndarray, int]:
    """The PDQ hashes the banks are queried with, packed to bytes (16, 32): the 8 dihedral
    ones (row 0 is the plain PDQ hash), then the 8 of the picture inside a solid border (or
    row 0 repeated, when there is none)."""
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    dihedral, quality, inside = pdq_hashes(Frame(rgb, 0))
    hexes = [*dihedral, *(inside or dihedral[:1] * 8)]
    return np.frombuffer(bytes.fromhex("".join(hexes)), np.uint8).reshape(16, 32), quality


def hash_source(source: Source) -> dict[str, Any]:
    name, original = _load(source)
    packed, quality = _dihedral(original)
    result: dict[str, Any] = {
        "name": name, "size": list(original.size), "pdq": packed[0], "dihedral": packed,
        "quality": quality, "transforms": {},
    }
    for label, transform in TRANSFORMS.items():
        result["transforms"][label] = _dihedral(transform(original))
    return result


# --- analysis --------------------------------------------------------------------------


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between packed hashes, broadcasting over leading axes."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


@dataclass(frozen=True)
class TransformResult:
    transform: str
    n: int
    transformed_low_quality: int
    match_dihedral: float
    match_plain: float
    median_dihedral: float
    p95_dihedral: float
    median_plain: float
    p95_plain: float


def _rate(distances: np.ndarray) -> float:
    return float((distances <= MATCH_DISTANCE).mean()) if distances.size else float("nan")


def _pct(distances: np.ndarray, q: float) -> float:
    return float(np.percentile(distances, q)) if distances.size else float("nan")


def transform_distances(results: Sequence[dict[str, Any]], label: str) -> dict[str, Any]:
    """Per-image distances for one transform, for originals with quality >= MIN_QUALITY."""
    names, dihedral, plain, low = [], [], [], []
    for r in results:
        packed, quality = r["transforms"][label]
        if quality < MIN_QUALITY:
            low.append(r["name"])
            continue
        distances = hamming(packed, r["pdq"][None, :])
        names.append(r["name"])
        dihedral.append(int(distances.min()))
        plain.append(int(distances[0]))
    return {"names": names, "dihedral": dihedral, "plain": plain, "low_quality": low}


def summarise(label: str, dist: dict[str, Any]) -> TransformResult:
    dihedral, plain = np.array(dist["dihedral"]), np.array(dist["plain"])
    return TransformResult(
        transform=label, n=len(dihedral), transformed_low_quality=len(dist["low_quality"]),
        match_dihedral=_rate(dihedral), match_plain=_rate(plain),
        median_dihedral=_pct(dihedral, 50), p95_dihedral=_pct(dihedral, 95),
        median_plain=_pct(plain, 50), p95_plain=_pct(plain, 95),
    )


def false_matches(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pairs of distinct originals within MATCH_DISTANCE, plain and as a dihedral query."""
    names = [r["name"] for r in results]
    pdq = np.stack([r["pdq"] for r in results])  # (N, 32)
    dihedral = np.stack([r["dihedral"] for r in results])  # (N, 16, 32)
    plain = hamming(pdq[:, None, :], pdq[None, :, :])  # (N, N)
    # query i (any of its 16 query hashes) against bank entry j; a pair counts either way
    query = hamming(dihedral[:, None, :, :], pdq[None, :, None, :]).min(axis=2)
    both = np.minimum(query, query.T)
    upper = np.triu_indices(len(results), k=1)
    def pair(i: int, j: int) -> dict[str, Any]:
        return {"a": names[i], "b": names[j], "plain": int(plain[i, j]),
                "dihedral": int(both[i, j])}

    pairs = [pair(i, j) for i, j in zip(*upper, strict=True)
             if min(plain[i, j], both[i, j]) <= MATCH_DISTANCE]
    pairs.sort(key=lambda p: (p["dihedral"], p["plain"], p["a"], p["b"]))
    nearest = np.argsort(both[upper], kind="stable")[:CLOSEST]
    return {
        "pairs_compared": len(upper[0]),
        "plain_within": int((plain[upper] <= MATCH_DISTANCE).sum()),
        "dihedral_within": int((both[upper] <= MATCH_DISTANCE).sum()),
        "plain_min": int(plain[upper].min()) if len(upper[0]) else None,
        "plain_p01": _pct(plain[upper], 1) if len(upper[0]) else None,
        "dihedral_min": int(both[upper].min()) if len(upper[0]) else None,
        "dihedral_p01": _pct(both[upper], 1) if len(upper[0]) else None,
        "pairs": pairs,
        "closest": [pair(int(upper[0][k]), int(upper[1][k])) for k in nearest],
    }


# --- running ---------------------------------------------------------------------------


def sources(limit: int | None, synthetic: int) -> list[Source]:
    files = sorted(p for folder in FACE_FOLDERS for p in (FACES / folder).glob("*.jpg"))
    if limit is not None:
        files, synthetic = files[:limit], min(synthetic, limit)
    return [("file", str(p)) for p in files] + [("synthetic", str(i)) for i in range(synthetic)]


def hash_all(todo: list[Source], workers: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(hash_source, todo, chunksize=4), start=1):
            results.append(result)
            if done % 50 == 0 or done == len(todo):
                print(f"hashed {done}/{len(todo)} originals", file=sys.stderr, flush=True)
    return results


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                     "")
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(),
            "python": platform.python_version(), "pdqhash": version("pdqhash"),
            "pillow": version("pillow"), "numpy": np.__version__}


def _fmt(value: float, percent: bool = False) -> str:
    if np.isnan(value):
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:g}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"PDQ robustness: {report['originals']['used']} originals used "
        f"({report['originals']['faces']} face photos, {report['originals']['synthetic']} "
        f"synthetic); match = Hamming distance <= {MATCH_DISTANCE}; hashes with quality < "
        f"{MIN_QUALITY} ignored ({report['originals']['low_quality']} originals excluded).",
        "",
        "| transform | n | transformed q<50 (excluded) | match dihedral | match plain "
        "| median d (dihedral) | p95 d (dihedral) | median d (plain) | p95 d (plain) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report["transforms"]:
        lines.append(
            f"| {t['transform']} | {t['n']} | {t['transformed_low_quality']} "
            f"| {_fmt(t['match_dihedral'], True)} | {_fmt(t['match_plain'], True)} "
            f"| {_fmt(t['median_dihedral'])} | {_fmt(t['p95_dihedral'])} "
            f"| {_fmt(t['median_plain'])} | {_fmt(t['p95_plain'])} |"
        )
    lines += ["", "Dihedral match rate by source:", "",
              "| transform | " + " | ".join(report["by_source"]) + " |",
              "|---|" + "---:|" * len(report["by_source"])]
    for label in TRANSFORMS:
        cells = [
            f"{_fmt(group[label]['match_dihedral'], True)} (n={group[label]['n']})"
            for group in report["by_source"].values()
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Transforms:", ""]
    lines += [f"- {label}: {text}" for label, text in DEFINITIONS.items()]
    lines += ["- All transforms run in memory on the decoded original; only the JPEG ones "
              "re-encode, the others are hashed from their pixels directly.",
              "- dihedral: any of the 8 dihedral hashes of the transformed image within "
              f"{MATCH_DISTANCE} of the original's PDQ; plain: the ordinary PDQ hash only."]
    lines += ["", *_false_match_lines(report["false_matches"]), "", _footer(report)]
    return "\n".join(lines)


def _false_match_lines(fm: dict[str, Any]) -> list[str]:
    lines = [
        f"False matches among {fm['pairs_compared']:,} pairs of distinct originals (q >= "
        f"{MIN_QUALITY}): {fm['plain_within']} within {MATCH_DISTANCE} plain, "
        f"{fm['dihedral_within']} as a dihedral query (either direction). Smallest distance: "
        f"plain {fm['plain_min']}, dihedral {fm['dihedral_min']}; 1st percentile plain "
        f"{_fmt(fm['plain_p01'])}, dihedral {_fmt(fm['dihedral_p01'])}.",
    ]
    if fm["pairs"]:
        lines += ["", *_pair_rows(fm["pairs"])]
    lines += ["", f"The {len(fm['closest'])} closest pairs by dihedral distance, matching or "
              "not:", "", *_pair_rows(fm["closest"])]
    return lines


def _pair_rows(pairs: list[dict[str, Any]]) -> list[str]:
    rows = ["| image a | image b | d plain | d dihedral |", "|---|---|---:|---:|"]
    return rows + [f"| {p['a']} | {p['b']} | {p['plain']} | {p['dihedral']} |" for p in pairs]


def _footer(report: dict[str, Any]) -> str:
    m = report["machine"]
    excluded = ", ".join(report["originals"]["low_quality_names"]) or "none"
    return (f"Originals excluded for quality < {MIN_QUALITY}: {excluded}.\n\n"
            f"Took {report['seconds']:.1f} s with {report['workers']} worker processes on "
            f"{m['nproc']} CPUs ({m['cpu']}); pdqhash {m['pdqhash']}, Pillow {m['pillow']}, "
            f"numpy {m['numpy']}, Python {m['python']}; {report['date']}.")


def build_report(results: list[dict[str, Any]], seconds: float, workers: int) -> dict[str, Any]:
    good = [r for r in results if r["quality"] >= MIN_QUALITY]
    low = [r["name"] for r in results if r["quality"] < MIN_QUALITY]
    groups = {"faces": [r for r in good if not r["name"].startswith("synthetic/")],
              "synthetic": [r for r in good if r["name"].startswith("synthetic/")]}
    distances = {label: transform_distances(good, label) for label in TRANSFORMS}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds, "workers": workers, "machine": machine(),
        "match_distance": MATCH_DISTANCE, "min_quality": MIN_QUALITY,
        "originals": {"total": len(results), "used": len(good), "low_quality": len(low),
                      "low_quality_names": low, "faces": len(groups["faces"]),
                      "synthetic": len(groups["synthetic"])},
        "definitions": DEFINITIONS,
        "transforms": [asdict(summarise(label, d)) for label, d in distances.items()],
        "by_source": {
            group: {label: asdict(summarise(label, transform_distances(members, label)))
                    for label in TRANSFORMS}
            for group, members in groups.items()
        },
        "false_matches": false_matches(good),
        "distances": distances,
        "hashes": {r["name"]: {"pdq": pdq_hex(np.unpackbits(r["pdq"])), "quality": r["quality"],
                               "size": r["size"]} for r in results},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="PDQ match rates under image transforms, and false matches between originals.")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N face photos and at most N synthetic images")
    parser.add_argument("--synthetic", type=int, default=50, help="synthetic images (50)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/hash_robustness.json"),
                        help="JSON report (bench/out/hash_robustness.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    results = hash_all(sources(args.limit, args.synthetic), args.workers)
    report = build_report(results, time.perf_counter() - start, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
