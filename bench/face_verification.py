"""Face verification on the deepface pairs: accuracy, TAR at low FAR, and embedding latency.

Runs the production face path on each photo (NudeNet face boxes, then FaceAgeDetector, then
FaceIdentityDetector: dlib's ResNet after 5-point alignment, all on one thread), keeps the
largest face per image and compares embeddings by Euclidean distance (same person when the
distance is below the threshold, as waakhond.signals.identity.SAME_PERSON). Three pair sets:

- master.csv as labelled (300 pairs);
- every pair among the master.csv images, with identities the connected components of its
  Yes pairs (cross-identity pairs are negatives);
- the same over the wider set that also uses face-recognition-pivot.csv's labels (61 photos),
  for enough negatives to resolve a FAR near 0.1%. A pair of components that no labelled No
  pair separates is left out rather than assumed to be two people.

Run from the repository root:

    .venv/bin/python bench/face_verification.py [--threshold 0.55] [--repeats 3] \
        [--json bench/out/face_verification.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from age_quality import pct  # the same percentage format as the age bench
from throughput import machine  # the same machine description as the other benches

from waakhond.intake import DecodedImage, decode_image
from waakhond.signals import SignalSet
from waakhond.signals.base import Box, Face
from waakhond.signals.faces import FaceAgeDetector
from waakhond.signals.identity import SAME_PERSON, FaceEmbedder, FaceIdentityDetector
from waakhond.signals.nudity import NudeNetDetector

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "deepface"
MASTER = "master.csv"
PIVOT = "face-recognition-pivot.csv"
FAR_TARGETS = (0.01, 0.001, 0.0)
SWEEP = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65)
WIDEST = "all pairs, wider set"
HARDEST = 6  # the farthest same-person and closest other-person pairs to list

Pair = tuple[str, str, bool]  # file_x, file_y, same person
T = TypeVar("T")


class TimedEmbedder(FaceEmbedder):
    """The production embedder, timing each call (one face: landmarks + ResNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls_ms: list[float] = []
        self.calls_cpu_ms: list[float] = []

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        started, cpu = time.perf_counter(), time.thread_time()
        vector = super().embed(rgb, box)
        self.calls_ms.append(1000 * (time.perf_counter() - started))
        self.calls_cpu_ms.append(1000 * (time.thread_time() - cpu))
        return vector


@dataclass
class Pipeline:
    nudenet: NudeNetDetector
    faces: FaceAgeDetector
    identity: FaceIdentityDetector
    embedder: TimedEmbedder
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    stage_cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @classmethod
    def load(cls) -> Pipeline:
        embedder = TimedEmbedder()
        return cls(NudeNetDetector(1), FaceAgeDetector(1), FaceIdentityDetector(embedder),
                   embedder)

    def timed(self, stage: str, run: Callable[[DecodedImage, SignalSet], T],
              image: DecodedImage, signals: SignalSet) -> T:
        started, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
        result = run(image, signals)
        self.wall_s += time.perf_counter() - started
        self.cpu_s += time.process_time() - cpu
        self.stage_ms.setdefault(stage, []).append(1000 * (time.perf_counter() - started))
        self.stage_cpu_ms.setdefault(stage, []).append(1000 * (time.thread_time() - thread))
        return result

    def run(self, image: DecodedImage) -> tuple[list[Face], list[np.ndarray]]:
        signals = SignalSet()
        signals.nudity = self.timed("nudenet (face boxes)", self.nudenet.run, image, signals)
        signals.faces = self.timed("face detection + age", self.faces.run, image, signals)
        found = self.timed("identity (all faces)", self.identity.run, image, signals)
        return signals.faces.faces, [e.array() for e in found.embeddings]


@dataclass(frozen=True)
class ImageFaces:
    name: str
    faces: int
    main: np.ndarray | None  # the largest face's embedding
    main_box: Box | None
    main_sources: tuple[str, ...]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with master.csv, face-recognition-pivot.csv and the photos")
    parser.add_argument("--threshold", type=float, default=SAME_PERSON,
                        help=f"the threshold to report (default SAME_PERSON, {SAME_PERSON})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="passes over all photos for the latency figures")
    parser.add_argument("--json", type=Path, help="write the full results as JSON here")
    return parser.parse_args()


# --- faces -------------------------------------------------------------------------------


def area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def image_faces(name: str, faces: list[Face], vectors: list[np.ndarray]) -> ImageFaces:
    if not faces:
        return ImageFaces(name, 0, None, None, ())
    main = max(range(len(faces)), key=lambda i: area(faces[i].box))
    return ImageFaces(name, len(faces), vectors[main], faces[main].box, faces[main].sources)


def embed_all(data: Path, pipeline: Pipeline, repeats: int) -> dict[str, ImageFaces]:
    """Every photo in the folder, ``repeats`` times (identical results; for the timings)."""
    files = sorted(data.glob("*.jpg"))
    pipeline.run(decode_image(files[0].read_bytes()))  # warm-up, not timed
    pipeline.stage_ms.clear()
    pipeline.stage_cpu_ms.clear()
    pipeline.embedder.calls_ms.clear()
    pipeline.embedder.calls_cpu_ms.clear()
    pipeline.cpu_s = pipeline.wall_s = 0.0
    found: dict[str, ImageFaces] = {}
    for _ in range(max(1, repeats)):
        for path in files:
            faces, vectors = pipeline.run(decode_image(path.read_bytes()))
            found[path.name] = image_faces(path.name, faces, vectors)
        print(f"pass done: {len(files)} photos", file=sys.stderr)
    return found


# --- pairs -------------------------------------------------------------------------------


def read_pairs(path: Path) -> list[Pair]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    decision = "Decision" if rows and "Decision" in rows[0] else "decision"
    return [(Path(r["file_x"]).name, Path(r["file_y"]).name, r[decision] == "Yes")
            for r in rows]


def identities(pairs: list[Pair]) -> dict[str, str]:
    """Image -> identity: the connected components of the Yes pairs."""
    parent = {name: name for a, b, _ in pairs for name in (a, b)}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for a, b, same in pairs:
        if same:
            parent[root(a)] = root(b)
    return {name: root(name) for name in parent}


def expanded(pairs: list[Pair]) -> tuple[list[Pair], dict[str, int]]:
    """Every pair among the labelled images, from the identities; a cross-identity pair only
    when some labelled No pair separates the two identities."""
    ident = identities(pairs)
    separated = {frozenset((ident[a], ident[b])) for a, b, same in pairs if not same}
    out: list[Pair] = []
    left_out = 0
    for a, b in itertools.combinations(sorted(ident), 2):
        if ident[a] == ident[b]:
            out.append((a, b, True))
        elif frozenset((ident[a], ident[b])) in separated:
            out.append((a, b, False))
        else:
            left_out += 1
    unseparated = sum(frozenset(p) not in separated
                      for p in itertools.combinations(set(ident.values()), 2))
    return out, {"images": len(ident), "identities": len(set(ident.values())),
                 "pairs_left_out": left_out, "identity_pairs_unseparated": unseparated}


def image_counts(names: set[str], found: dict[str, ImageFaces]) -> dict[str, Any]:
    return {
        "images": len(names),
        "no_face": sorted(n for n in names if found[n].faces == 0),
        "several_faces": {n: found[n].faces for n in sorted(names) if found[n].faces > 1},
    }


# --- metrics -----------------------------------------------------------------------------


def distances(pairs: list[Pair], found: dict[str, ImageFaces]) -> dict[str, Any]:
    measured: list[tuple[float, str, str, bool]] = []
    for a, b, same in pairs:
        x, y = found[a].main, found[b].main
        if x is not None and y is not None:
            measured.append((float(np.linalg.norm(x - y)), a, b, same))
    measured.sort()
    return {
        "pos": [d for d, _, _, same in measured if same],
        "neg": [d for d, _, _, same in measured if not same],
        "skipped_no_face": len(pairs) - len(measured),
        "hardest_positives": [(round(d, 3), a, b) for d, a, b, same in reversed(measured)
                              if same][:HARDEST],
        "hardest_negatives": [(round(d, 3), a, b) for d, a, b, same in measured
                              if not same][:HARDEST],
    }


def operating_point(pos: list[float], neg: list[float], threshold: float) -> dict[str, Any]:
    accepted = sum(d < threshold for d in pos)
    false_accepts = sum(d < threshold for d in neg)
    return {
        "threshold": threshold,
        "tar": accepted / len(pos) if pos else math.nan,
        "far": false_accepts / len(neg) if neg else math.nan,
        "false_accepts": false_accepts,
        "false_rejects": len(pos) - accepted,
        "accuracy": (accepted + len(neg) - false_accepts) / (len(pos) + len(neg)),
    }


def at_far(pos: list[float], neg: list[float], target: float) -> dict[str, Any]:
    """The largest threshold whose FAR is at most ``target`` (same: distance < threshold)."""
    allowed = math.floor(target * len(neg) + 1e-9)
    threshold = neg[allowed] if allowed < len(neg) else math.inf
    point = operating_point(pos, neg, threshold)
    return {"target_far": target, "allowed_false_accepts": allowed, **point}


def best_accuracy(pos: list[float], neg: list[float]) -> dict[str, Any]:
    """The highest accuracy over all thresholds: the lowest interval (low, high] of
    thresholds that gives it (same: distance < threshold)."""
    cuts = sorted(set(pos + neg))
    intervals = [(-math.inf, cuts[0]), *itertools.pairwise(cuts), (cuts[-1], math.inf)]
    scored = [(operating_point(pos, neg, high)["accuracy"], low, high)
              for low, high in intervals]
    best, low, high = max(scored, key=lambda s: (s[0], -s[1]))
    point = operating_point(pos, neg, high)
    return {"accuracy": best, "above": low, "up_to": high,
            "tar": point["tar"], "far": point["far"]}


def evaluate(pairs: list[Pair], found: dict[str, ImageFaces],
             threshold: float) -> dict[str, Any]:
    d = distances(pairs, found)
    pos, neg = d["pos"], d["neg"]
    return {
        "pairs": len(pairs), "positives": len(pos), "negatives": len(neg),
        "skipped_no_face": d["skipped_no_face"],
        "smallest_resolvable_far": 1 / len(neg) if neg else math.nan,
        "largest_positive_distance": pos[-1] if pos else math.nan,
        "smallest_negative_distance": neg[0] if neg else math.nan,
        "at_current": operating_point(pos, neg, SAME_PERSON),
        "at_chosen": operating_point(pos, neg, threshold),
        "best": best_accuracy(pos, neg),
        "hardest_positives": d["hardest_positives"],
        "hardest_negatives": d["hardest_negatives"],
        "roc": [at_far(pos, neg, t) for t in FAR_TARGETS],
        "sweep": [operating_point(pos, neg, t) for t in SWEEP],
        "distances": {"positive": [round(v, 4) for v in pos],
                      "negative": [round(v, 4) for v in neg]},
    }


def latency(pipeline: Pipeline) -> dict[str, Any]:
    """Wall time per call, and this thread's CPU time (less sensitive to a busy machine)."""
    embedding = "embedding per face (landmarks + ResNet)"
    stages = {embedding: pipeline.embedder.calls_ms, **pipeline.stage_ms}
    cpu = {embedding: pipeline.embedder.calls_cpu_ms, **pipeline.stage_cpu_ms}
    return {
        "stages": {name: {"n": len(v), "p50_ms": float(np.percentile(v, 50)),
                          "p95_ms": float(np.percentile(v, 95)), "mean_ms": float(np.mean(v)),
                          "cpu_p50_ms": float(np.percentile(cpu[name], 50)),
                          "cpu_p95_ms": float(np.percentile(cpu[name], 95))}
                   for name, v in stages.items() if v},
        "cpu_per_wall": pipeline.cpu_s / pipeline.wall_s if pipeline.wall_s else math.nan,
    }


# --- report ------------------------------------------------------------------------------


def fine_pct(share: float) -> str:
    """Two decimals: FARs here are steps of 1/1552 or 1/262."""
    return f"{100 * share:.2f}%"


def far_cell(point: dict[str, Any], negatives: int) -> str:
    return f"{fine_pct(point['far'])} ({point['false_accepts']}/{negatives})"


def resolution_note(target: float, negatives: int) -> str:
    if target == 0.0:
        return "no false accept"
    if target * negatives < 1:
        return f"not resolvable with {negatives} negatives: same as FAR 0"
    return f"up to {math.floor(target * negatives + 1e-9)} false accepts"


def sets_table(sets: dict[str, dict[str, Any]], threshold: float) -> list[str]:
    lines = ["| pair set | images | identities | positives | negatives | smallest FAR step "
             f"| accuracy at {SAME_PERSON:g} | accuracy at {threshold:g} "
             "| best accuracy (tuned on these pairs) | max same-person d | min other-person d |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, s in sets.items():
        b = s["best"]
        lines.append(
            f"| {name} | {s['images']} | {s['identities']} | {s['positives']} | "
            f"{s['negatives']} | {fine_pct(s['smallest_resolvable_far'])} | "
            f"{pct(s['at_current']['accuracy'])} | {pct(s['at_chosen']['accuracy'])} | "
            f"{pct(b['accuracy'])} for t in ({b['above']:.3f}, {b['up_to']:.3f}] | "
            f"{s['largest_positive_distance']:.3f} | {s['smallest_negative_distance']:.3f} |")
    return lines


def roc_table(sets: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| pair set | FAR target | threshold (distance <) | TAR | FAR measured | note |",
             "|---|---:|---:|---:|---:|---|"]
    for name, s in sets.items():
        for p in s["roc"]:
            lines.append(f"| {name} | {fine_pct(p['target_far'])} | {p['threshold']:.3f} | "
                         f"{pct(p['tar'])} ({s['positives'] - p['false_rejects']}/"
                         f"{s['positives']}) | {far_cell(p, s['negatives'])} | "
                         f"{resolution_note(p['target_far'], s['negatives'])} |")
    return lines


def sweep_table(sets: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| threshold | " + " | ".join(f"{n}: TAR / FAR / accuracy" for n in sets) + " |",
             "|---:|" + "---|" * len(sets)]
    for i, t in enumerate(SWEEP):
        cells = [f"{pct(s['sweep'][i]['tar'])} / {far_cell(s['sweep'][i], s['negatives'])} / "
                 f"{pct(s['sweep'][i]['accuracy'])}" for s in sets.values()]
        lines.append(f"| {t:.2f} | " + " | ".join(cells) + " |")
    return lines


def latency_table(lat: dict[str, Any]) -> list[str]:
    lines = ["| stage | n | p50 ms | p95 ms | mean ms | CPU p50 ms | CPU p95 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in lat["stages"].items():
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                     f"{s['mean_ms']:.1f} | {s['cpu_p50_ms']:.1f} | {s['cpu_p95_ms']:.1f} |")
    return lines


def faces_lines(counts: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, c in counts.items():
        several = ", ".join(f"{k} ({v})" for k, v in c["several_faces"].items()) or "none"
        no_face = ", ".join(c["no_face"]) or "none"
        lines.append(f"- {name}: {c['images']} images; no face: {no_face}; "
                     f"several faces (largest used): {several}")
    return lines


def hardest_lines(sets: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name in ("master.csv", WIDEST):
        for kind, label in (("hardest_positives", "farthest same-person pairs"),
                            ("hardest_negatives", "closest other-person pairs")):
            pairs = ", ".join(f"{a}-{b} {d:.3f}" for d, a, b in sets[name][kind])
            lines.append(f"- {name}, {label}: {pairs}")
    return lines


def report(result: dict[str, Any]) -> str:
    m, sets = result["machine"], result["sets"]
    same = "the same pairs as" if result["same_as_master"] else "more pairs than"
    return "\n".join([
        f"# Face verification: deepface pairs, largest face per image, threshold "
        f"{result['threshold']:g} (current SAME_PERSON {SAME_PERSON:g})",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['date_utc']}; all models on one thread "
        f"(CPU/wall {result['latency']['cpu_per_wall']:.2f}).",
        "",
        *faces_lines(result["faces"]),
        f"- every pair among the master.csv images gives {same} master.csv itself",
        f"- wider set: {result['wider']['pairs_left_out']} image pairs left out "
        f"({result['wider']['identity_pairs_unseparated']} identity pairs no labelled No "
        "pair separates)",
        *hardest_lines(sets),
        "",
        *sets_table(sets, result["threshold"]),
        "",
        *roc_table(sets),
        "",
        *sweep_table(sets),
        "",
        *latency_table(result["latency"]),
    ])


def main() -> None:
    args = parse_args()
    master = read_pairs(args.data / MASTER)
    master_all, master_info = expanded(master)
    wider, wider_info = expanded(master + read_pairs(args.data / PIVOT))
    pipeline = Pipeline.load()
    found = embed_all(args.data, pipeline, args.repeats)
    info = {"master.csv": {"images": master_info["images"],
                           "identities": master_info["identities"]},
            "all pairs, master images": master_info, WIDEST: wider_info}
    pair_sets = {"master.csv": master, "all pairs, master images": master_all,
                 WIDEST: wider}
    sets = {name: {**info[name], **evaluate(pairs, found, args.threshold)}
            for name, pairs in pair_sets.items()}
    result = {
        "machine": machine(),
        "threshold": args.threshold,
        "same_as_master": {frozenset(p[:2]) for p in master} == {frozenset(p[:2])
                                                                  for p in master_all},
        "faces": {"master images": image_counts({n for p in master for n in p[:2]}, found),
                  "wider set": image_counts({n for p in wider for n in p[:2]}, found),
                  "all photos": image_counts(set(found), found)},
        "wider": wider_info,
        "sets": sets,
        "latency": latency(pipeline),
        "main_faces": {n: {"faces": f.faces, "box": f.main_box, "sources": f.main_sources}
                       for n, f in sorted(found.items())},
    }
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
