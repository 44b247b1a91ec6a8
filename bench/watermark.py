"""Speed, invisibility and robustness of the invisible watermark (waakhond.provenance.watermark).

Timing: embed and read on 1024 x 1024 and 1024 x 1536 RGB images (face photos from
shared/data/faces scaled to that size, one per run), in this process, after a warm-up.
Robustness: every face photo in shared/data/faces (fairface/ and deepface/), decoded with the
project's decoder and scaled so its longer side is 1024 px, is marked with a fresh random id,
transformed in memory with Pillow, and read again; a survival counts only the right id. PSNR
compares the marked photo with the unmarked one. False positives: the unmarked 1024-px photos
and the original files as decoded are read; any "found" is a false positive. Only harmless
images are used. Run from the repository root (Markdown to stdout, progress to stderr):

    .venv/bin/python bench/watermark.py [--runs 50] [--limit N] [--workers 2]
        [--out bench/out/watermark.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from hash_robustness import Transform, crop, jpeg, redecode, resize  # the same transforms
from PIL import Image

from waakhond.intake.image import decode_image
from waakhond.provenance.watermark import embed_watermark, new_mark_id, read_watermark

# The shared development data sits beside the repository (shared/data/SOURCES.md).
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
FACE_FOLDERS = ("deepface", "fairface")
SIDE = 1024
TIMING_SIZES = ((1024, 1024), (1024, 1536))  # (width, height)
WARMUP = 3
TARGET_EMBED_MS = 40.0  # 1024 x 1024 on 2 cores
TARGET_READ_MS = 25.0
TARGET_PSNR_DB = 38.0

TRANSFORMS: dict[str, Transform] = {
    "none": lambda image: image,
    "jpeg_q80": jpeg(80),
    "jpeg_q50": jpeg(50),
    "resize_0.5": resize(0.5),
    "resize_2": resize(2.0),
    "resize_0.5+jpeg_q80": lambda image: redecode(resize(0.5)(image), 80),
    "crop_5pct": crop(0.05),
}

DEFINITIONS = {
    "none": "the marked pixels as embed_watermark returns them",
    "jpeg_q80": "re-encode as JPEG quality 80 (Pillow), decode with the project's decoder",
    "jpeg_q50": "re-encode as JPEG quality 50 (Pillow), decode with the project's decoder",
    "resize_0.5": "both sides x0.5 (Lanczos)",
    "resize_2": "both sides x2 (Lanczos)",
    "resize_0.5+jpeg_q80": "both sides x0.5 (Lanczos), then JPEG quality 80",
    "crop_5pct": "centre crop keeping the central 95% x 95% (2.5% off each side)",
}


# --- measuring -------------------------------------------------------------------------


def psnr(original: Image.Image, marked: Image.Image) -> float:
    a = np.asarray(original.convert("RGB"), np.float64)
    b = np.asarray(marked.convert("RGB"), np.float64)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def load_photo(path: Path) -> Image.Image:
    """A face photo as the gateway would see it, scaled so its longer side is SIDE px."""
    image = Image.fromarray(decode_image(path.read_bytes()).first.rgb)
    scale = SIDE / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def photo_result(path_text: str) -> dict[str, Any]:
    """Mark one photo, read it after every transform, and read the unmarked versions."""
    path = Path(path_text)
    original = load_photo(path)
    mark_id = new_mark_id()
    marked = embed_watermark(original, mark_id)
    reads = {label: read_watermark(transform(marked)) for label, transform in TRANSFORMS.items()}
    native = read_watermark(Image.fromarray(decode_image(path.read_bytes()).first.rgb))
    unmarked = read_watermark(original)
    return {
        "name": f"{path.parent.name}/{path.name}",
        "psnr": psnr(original, marked),
        "survived": {k: r.found and r.mark_id == mark_id for k, r in reads.items()},
        "wrong_id": {k: r.found and r.mark_id != mark_id for k, r in reads.items()},
        "confidence": {k: r.confidence for k, r in reads.items()},
        "false_positive": {"unmarked_1024": unmarked.found, "unmarked_native": native.found},
        "unmarked_confidence": {"unmarked_1024": unmarked.confidence,
                                "unmarked_native": native.confidence},
    }


def timing(size: tuple[int, int], runs: int, photos: list[Path]) -> dict[str, Any]:
    images = [load_photo(p).resize(size, Image.Resampling.LANCZOS)
              for p in photos[:: max(1, len(photos) // runs)][:runs]]
    embed_ms, read_ms, psnrs = [], [], []
    for index in range(WARMUP + runs):
        image = images[index % len(images)]
        mark_id = new_mark_id()
        started = time.perf_counter()
        marked = embed_watermark(image, mark_id)
        embedded = time.perf_counter()
        reading = read_watermark(marked)
        done = time.perf_counter()
        if index < WARMUP:
            continue
        assert reading.mark_id == mark_id, "timing image did not read back"
        embed_ms.append(1000 * (embedded - started))
        read_ms.append(1000 * (done - embedded))
        psnrs.append(psnr(image, marked))
    return {
        "size": f"{size[0]}x{size[1]}", "runs": runs,
        "embed_p50_ms": float(np.percentile(embed_ms, 50)),
        "embed_p99_ms": float(np.percentile(embed_ms, 99)),
        "read_p50_ms": float(np.percentile(read_ms, 50)),
        "read_p99_ms": float(np.percentile(read_ms, 99)),
        "psnr_min_db": float(min(psnrs)), "psnr_median_db": float(np.median(psnrs)),
    }


def robustness(photos: list[Path], workers: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        todo = [str(p) for p in photos]
        for done, result in enumerate(pool.map(photo_result, todo, chunksize=4), start=1):
            results.append(result)
            if done % 100 == 0 or done == len(todo):
                print(f"marked and read {done}/{len(todo)} photos", file=sys.stderr, flush=True)
    return results


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    psnrs = np.array([r["psnr"] for r in results])
    transforms = {
        label: {
            "survival": sum(r["survived"][label] for r in results) / n,
            "wrong_id": sum(r["wrong_id"][label] for r in results),
            "confidence_min": min(r["confidence"][label] for r in results),
            "confidence_median": float(np.median([r["confidence"][label] for r in results])),
        }
        for label in TRANSFORMS
    }
    false_positives = {
        kind: {
            "n": n, "found": sum(r["false_positive"][kind] for r in results),
            "confidence_max": max(r["unmarked_confidence"][kind] for r in results),
        }
        for kind in ("unmarked_1024", "unmarked_native")
    }
    return {"photos": n, "psnr_min_db": float(psnrs.min()),
            "psnr_median_db": float(np.median(psnrs)),
            "psnr_below_target": int((psnrs < TARGET_PSNR_DB).sum()),
            "transforms": transforms, "false_positives": false_positives}


# --- report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                     "")
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(),
            "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "pillow": version("pillow")}


def markdown(report: dict[str, Any]) -> str:
    summary = report["robustness"]
    lines = [
        f"# Watermark: timing ({report['timing'][0]['runs']} runs per size) and robustness "
        f"({summary['photos']} face photos, longer side {SIDE} px)",
        "",
        "| image | embed p50 ms | embed p99 ms | read p50 ms | read p99 ms "
        "| PSNR min dB | PSNR median dB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {t['size']} | {t['embed_p50_ms']:.1f} | {t['embed_p99_ms']:.1f} "
        f"| {t['read_p50_ms']:.1f} | {t['read_p99_ms']:.1f} | {t['psnr_min_db']:.1f} "
        f"| {t['psnr_median_db']:.1f} |"
        for t in report["timing"]
    ]
    lines += [
        "",
        f"PSNR over all photos: min {summary['psnr_min_db']:.1f} dB, median "
        f"{summary['psnr_median_db']:.1f} dB, {summary['psnr_below_target']} below "
        f"{TARGET_PSNR_DB:g} dB.",
        "",
        "| transform | survival (right id) | wrong id read | confidence min | confidence median |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | {100 * t['survival']:.1f}% | {t['wrong_id']} | {t['confidence_min']:.3f} "
        f"| {t['confidence_median']:.3f} |"
        for label, t in summary["transforms"].items()
    ]
    lines += ["", "| unmarked photos | n | found (false positive) | rate | confidence max |",
              "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {kind} | {fp['n']} | {fp['found']} | {100 * fp['found'] / fp['n']:.2f}% "
        f"| {fp['confidence_max']:.3f} |"
        for kind, fp in summary["false_positives"].items()
    ]
    lines += ["", "Transforms:", ""]
    lines += [f"- {label}: {text}" for label, text in DEFINITIONS.items()]
    lines += ["", *_target_lines(report), "", _footer(report)]
    return "\n".join(lines)


def _target_lines(report: dict[str, Any]) -> list[str]:
    square = report["timing"][0]
    summary = report["robustness"]
    checks = [
        (f"embed p50 <= {TARGET_EMBED_MS:g} ms (1024x1024)",
         square["embed_p50_ms"] <= TARGET_EMBED_MS),
        (f"read p50 <= {TARGET_READ_MS:g} ms (1024x1024)", square["read_p50_ms"] <= TARGET_READ_MS),
        (f"PSNR >= {TARGET_PSNR_DB:g} dB on every photo", summary["psnr_below_target"] == 0),
        *((f"survives {label}", summary["transforms"][label]["survival"] == 1.0)
          for label in ("jpeg_q80", "resize_0.5", "resize_2", "resize_0.5+jpeg_q80")),
        ("no false positive on unmarked photos",
         all(fp["found"] == 0 for fp in summary["false_positives"].values())),
    ]
    return ["Targets:", ""] + [f"- {text}: {'met' if ok else 'NOT MET'}" for text, ok in checks]


def _footer(report: dict[str, Any]) -> str:
    m = report["machine"]
    return (f"Took {report['seconds']:.1f} s ({report['workers']} worker processes for the "
            f"photos, timing in one process) on {m['nproc']} CPUs ({m['cpu']}); numpy "
            f"{m['numpy']}, OpenCV {m['opencv']}, Pillow {m['pillow']}, Python {m['python']}; "
            f"{report['date']}.")


# --- running ---------------------------------------------------------------------------


def face_photos(limit: int | None) -> list[Path]:
    files = sorted(p for folder in FACE_FOLDERS for p in (FACES / folder).glob("*.jpg"))
    return files[:limit] if limit is not None else files


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per image size (50)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.workers < 1:
        parser.error("need --runs >= 1 and --workers >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    photos = face_photos(args.limit)
    if not photos:
        sys.exit(f"no face photos under {FACES}")
    started = time.perf_counter()
    timings = [timing(size, args.runs, photos) for size in TIMING_SIZES]
    results = robustness(photos, args.workers)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started, "workers": args.workers,
        "machine": machine(), "definitions": DEFINITIONS, "timing": timings,
        "robustness": summarise(results), "photos": results,
    }
    print(markdown(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
