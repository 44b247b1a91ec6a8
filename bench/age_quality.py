"""Apparent-age quality on the FairFace sample: does every child count as a possible minor?

Screens each photo with context="edit_input" (so face and age estimation always run) and
reports, per FairFace age bucket, how often a face was found and how often the policy's
"possible minor" test holds (youngest of four views under the bound, or P(minor) at
least the threshold in any view), plus a sensitivity table over the two thresholds computed from
the stored per-face values. Run from the repository root:

    .venv/bin/python bench/age_quality.py [--out bench/out/age_quality.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from waakhond import Screener
from waakhond.config import ScreeningSettings
from waakhond.policy import load_policy

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "fairface"
MINOR_BUCKETS = ("0-2", "3-9")
STRADDLING_BUCKET = "10-19"
SENSITIVITY_PROBABILITIES = (0.05, 0.1, 0.2, 0.3, 0.5)
SENSITIVITY_BOUNDS = (21.0, 25.0)
MINOR_TARGET = 0.98


@dataclass(frozen=True)
class FaceResult:
    box: list[int]
    apparent_age: float | None
    youngest_age: float | None  # the youngest of the four views: what the policy tests
    p_minor: float | None
    sources: list[str]


@dataclass(frozen=True)
class ImageResult:
    filename: str
    bucket: str
    faces: list[FaceResult]

    @property
    def main_face(self) -> FaceResult | None:
        """The largest face: FairFace crops centre the labelled person; others are bystanders."""
        return max(self.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]),
                   default=None)

    def flagged(self, bound: float, probability: float, main_only: bool = False) -> bool:
        """The policy's possible_minor test: any aged face young-looking or likely minor."""
        main = self.main_face
        faces = ([main] if main else []) if main_only else self.faces
        return any(
            f.youngest_age is not None
            and (f.youngest_age < bound or (f.p_minor or 0.0) >= probability)
            for f in faces
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with ground_truth.json and the photos")
    parser.add_argument("--threads", type=int, default=2, help="ONNX threads per model")
    parser.add_argument("--out", type=Path, help="write the full results as JSON here")
    return parser.parse_args()


def screen_all(data: Path, threads: int) -> list[ImageResult]:
    truth = json.loads((data / "ground_truth.json").read_text())
    screener = Screener(ScreeningSettings.from_env(model_threads=threads))
    results = []
    for i, entry in enumerate(truth, 1):
        verdict = screener.check_image((data / entry["filename"]).read_bytes(),
                                       context="edit_input")
        faces = verdict.signals.get("faces", {}).get("faces", [])
        results.append(ImageResult(entry["filename"], entry["age"], [
            FaceResult(list(f["box"]), f["apparent_age"], f["youngest_age"], f["p_minor"],
                       list(f["sources"]))
            for f in faces
        ]))
        if i % 100 == 0:
            print(f"screened {i}/{len(truth)}", file=sys.stderr)
    return results


def bucket_key(bucket: str) -> int:
    return int(bucket.split("-")[0].rstrip("+"))


def by_bucket(results: list[ImageResult]) -> dict[str, list[ImageResult]]:
    buckets: dict[str, list[ImageResult]] = {}
    for r in sorted(results, key=lambda r: bucket_key(r.bucket)):
        buckets.setdefault(r.bucket, []).append(r)
    return buckets


def bucket_row(items: list[ImageResult], bound: float, probability: float) -> dict[str, Any]:
    mains = [r.main_face for r in items]
    ages = [f.apparent_age for f in mains if f is not None and f.apparent_age is not None]
    sources = Counter(s for r in items for f in r.faces for s in f.sources)
    return {
        "n": len(items),
        "face_found": sum(bool(r.faces) for r in items) / len(items),
        "flagged": sum(r.flagged(bound, probability) for r in items) / len(items),
        "flagged_main_face": sum(r.flagged(bound, probability, main_only=True)
                                 for r in items) / len(items),
        "mean_apparent_age_main_face": sum(ages) / len(ages) if ages else None,
        "faces": sum(len(r.faces) for r in items),
        "sources": dict(sorted(sources.items())),
    }


def minors_summary(results: list[ImageResult], bound: float,
                   probability: float) -> dict[str, Any]:
    minors = [r for r in results if r.bucket in MINOR_BUCKETS]
    no_face = [r.filename for r in minors if not r.faces]
    not_flagged = [r.filename for r in minors
                   if r.faces and not r.flagged(bound, probability)]
    flagged = len(minors) - len(no_face) - len(not_flagged)
    return {
        "buckets": list(MINOR_BUCKETS),
        "n": len(minors),
        "flagged": flagged / len(minors),
        "target": MINOR_TARGET,
        "meets_target": flagged / len(minors) >= MINOR_TARGET,
        "missed_no_face": no_face,
        "missed_not_flagged": not_flagged,
    }


def sensitivity(buckets: dict[str, list[ImageResult]]) -> dict[str, dict[str, float]]:
    """Flagged share per bucket for each (age bound, minor probability) pair."""
    return {
        f"bound={bound:g},p={p:g}": {
            name: sum(r.flagged(bound, p) for r in items) / len(items)
            for name, items in buckets.items()
        }
        for bound in SENSITIVITY_BOUNDS
        for p in SENSITIVITY_PROBABILITIES
    }


def pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def bucket_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| age bucket | n | face found | flagged possible minor | flagged by main face "
             "| mean apparent age (main face) | faces by source |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, row in rows.items():
        mean = row["mean_apparent_age_main_face"]
        sources = ", ".join(f"{k} {v}" for k, v in row["sources"].items()) or "-"
        lines.append(f"| {name} | {row['n']} | {pct(row['face_found'])} | "
                     f"{pct(row['flagged'])} | {pct(row['flagged_main_face'])} | "
                     f"{'-' if mean is None else f'{mean:.1f}'} | "
                     f"{sources} |")
    return lines


def minors_lines(summary: dict[str, Any]) -> list[str]:
    verdict = "PASS" if summary["meets_target"] else "FAIL"
    no_face, not_flagged = summary["missed_no_face"], summary["missed_not_flagged"]
    return [
        f"Minors ({' + '.join(summary['buckets'])}, n={summary['n']}): flagged "
        f"{pct(summary['flagged'])} (target >= {pct(summary['target'])}: {verdict})",
        f"- missed, no face found: {len(no_face)} {', '.join(no_face)}",
        f"- missed, face found but not flagged: {len(not_flagged)} {', '.join(not_flagged)}",
    ]


def sensitivity_table(table: dict[str, dict[str, float]], buckets: list[str]) -> list[str]:
    lines = ["| age bound, p_minor threshold | " + " | ".join(buckets) + " |",
             "|---|" + "---:|" * len(buckets)]
    for setting, shares in table.items():
        lines.append(f"| {setting} | " + " | ".join(pct(shares[b]) for b in buckets) + " |")
    return lines


def report(result: dict[str, Any]) -> str:
    t = result["thresholds"]
    lines = [
        f"# Apparent-age quality: {result['images']} FairFace photos, context=edit_input",
        "",
        f"Policy: possible minor when apparent_age < {t['minor_age_bound']:g} or "
        f"p_minor >= {t['minor_probability']:g}. Screening took {result['seconds']:.0f} s.",
        "",
        *bucket_table(result["buckets"]),
        "",
        f"Bucket {STRADDLING_BUCKET} straddles 18: it holds both minors and adults. "
        "'Main face' is the largest face, the labelled person; the policy flags on any face, "
        "so a bystander at the crop's edge can flag an adult's photo.",
        "",
        *minors_lines(result["minors"]),
        "",
        "## Sensitivity (flagged share, from the stored per-face values)",
        "",
        *sensitivity_table(result["sensitivity"], list(result["buckets"])),
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    thresholds = load_policy(None).thresholds
    bound, probability = thresholds.minor_age_bound, thresholds.minor_probability
    started = time.perf_counter()
    results = screen_all(args.data, args.threads)
    seconds = time.perf_counter() - started
    buckets = by_bucket(results)
    result = {
        "images": len(results),
        "seconds": seconds,
        "thresholds": {"minor_age_bound": bound, "minor_probability": probability},
        "buckets": {name: bucket_row(items, bound, probability)
                    for name, items in buckets.items()},
        "minors": minors_summary(results, bound, probability),
        "sensitivity": sensitivity(buckets),
        "per_image": [asdict(r) for r in results],
    }
    print(report(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
