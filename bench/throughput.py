"""Throughput of the screener on 1024-px JPEGs, against the decode-and-resize floor.

Builds two mixes of 1024-px JPEGs (quality 90): a "benign" mix of synthetic harmless images
with about 15% face photos, screened as uploads (faces run only when the cascade asks), and
a "face-heavy" mix of face photos screened as edit inputs (faces always run). Each runs on
worker processes (spawn) that each hold one Screener with model_threads=1, after a warm-up;
the floor is the same files decoded and resized to 512 px by the same workers. Run from the
repository root:

    .venv/bin/python bench/throughput.py [--images 200] [--workers 2] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image, ImageDraw, ImageFont

from waakhond import Screener
from waakhond.config import ScreeningSettings

# The shared development data sits beside the repository (shared/data/SOURCES.md).
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
SIDE = 1024
QUALITY = 90
FLOOR_SIDE = 512
FACE_SHARE = 0.15
WARMUP_PER_MIX = 3
SHAPES = ((1024, 768), (768, 1024), (1024, 1024), (1024, 576))
WORDS = ("river", "garden", "window", "bicycle", "morning", "harbour", "lantern", "meadow",
         "invoice", "recipe", "weather", "market", "station", "library", "kettle", "orchard")
TARGET_BENIGN = 35.0  # images/s on 2 cores
TARGET_FACE_HEAVY = 8.0
TARGET_RSS_MIB = 1536.0  # 1.5 GiB for all worker processes together
RSS_SAMPLE_S = 0.05

Rng = np.random.Generator
Task = tuple[str, str, str]  # kind ("screen" or "floor"), path, context


@dataclass(frozen=True)
class Mix:
    name: str
    context: str
    paths: list[Path]


@dataclass(frozen=True)
class Phase:
    workers: int
    mix: str
    kind: str
    images: int
    seconds: float
    images_per_s: float
    peak_rss_mib: float
    mean_ms: dict[str, float]
    faces_ran: float


# --- synthetic harmless images ---------------------------------------------------------


def colour(rng: Rng) -> tuple[int, int, int]:
    r, g, b = rng.integers(0, 256, 3)
    return int(r), int(g), int(b)


def gradient(rng: Rng, width: int, height: int) -> Image.Image:
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    t = np.cos(angle) * x + np.sin(angle) * y
    t = ((t - t.min()) / (np.ptp(t) or 1.0))[..., None]
    start, end = np.array(colour(rng)), np.array(colour(rng))
    return Image.fromarray((start * (1 - t) + end * t).astype(np.uint8))


def shapes(rng: Rng, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(15, 40))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour(rng))
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour(rng))
        else:
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height)))
                      for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=colour(rng))
    return image


def noise(rng: Rng, width: int, height: int) -> Image.Image:
    coarse = Image.fromarray(rng.integers(0, 256, (height // 64, width // 64, 3), np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float64)
    grain = rng.normal(0, rng.uniform(5, 40), (height, width, 3))
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def text(rng: Rng, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(18, 48))
    font = ImageFont.load_default(size=size)
    for y in range(size, height - size, int(size * 1.5)):
        line = " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(3, 9))))
        draw.text((size, y), line, fill=tuple(int(v) for v in rng.integers(0, 90, 3)), font=font)
    return image


def landscape(rng: Rng, width: int, height: int) -> Image.Image:
    rows = np.linspace(0, 1, height)[:, None, None]
    sky = np.array([90, 150, 230]) * (1 - rows) + np.array([230, 235, 245]) * rows
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    image_rows = np.arange(height)[:, None]
    for layer in range(int(rng.integers(2, 5))):
        walk = np.cumsum(rng.normal(0, 3, width))
        ridge = height * (0.35 + 0.15 * layer) + walk - walk.mean()
        green = np.array([40 + 30 * layer, 90 + 25 * layer, 50]) * rng.uniform(0.7, 1.1)
        pixels[image_rows > ridge[None, :]] = green
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    cx, cy, r = int(rng.integers(0, width)), int(rng.integers(0, height // 4)), 40
    ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 230, 150))
    return image


SYNTHETIC: tuple[Callable[[Rng, int, int], Image.Image], ...] = (
    gradient, shapes, noise, text, landscape,
)


# --- the benchmark set -----------------------------------------------------------------


def save_jpeg(image: Image.Image, path: Path) -> Path:
    scale = SIDE / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    image.convert("RGB").save(path, "JPEG", quality=QUALITY)
    return path


def photos(folder: str) -> list[Path]:
    return sorted((FACES / folder).glob("*.jpg"))


def copy_photos(sources: list[Path], count: int, folder: Path, prefix: str) -> list[Path]:
    """``count`` photos cycled from ``sources``, resized to SIDE."""
    out = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as image:
            out.append(save_jpeg(image, folder / f"{prefix}-{i:04d}.jpg"))
    return out


def benign_mix(folder: Path, count: int, rng: Rng) -> Mix:
    faces = round(count * FACE_SHARE)
    paths = copy_photos(photos("deepface"), faces, folder, "benign-face")
    for i in range(count - faces):
        width, height = SHAPES[int(rng.integers(len(SHAPES)))]
        image = SYNTHETIC[i % len(SYNTHETIC)](rng, width, height)
        paths.append(save_jpeg(image, folder / f"benign-synthetic-{i:04d}.jpg"))
    return Mix("benign", "upload", [paths[i] for i in rng.permutation(len(paths))])


def face_heavy_mix(folder: Path, count: int, rng: Rng) -> Mix:
    pool = photos("deepface") + photos("fairface")
    chosen = [pool[i] for i in rng.permutation(len(pool))]
    return Mix("face-heavy", "edit_input", copy_photos(chosen, count, folder, "faces"))


def build_mixes(folder: Path, count: int, seed: int) -> list[Mix]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()
    rng = np.random.default_rng(seed)
    return [benign_mix(folder, count, rng), face_heavy_mix(folder, count, rng)]


# --- worker processes ------------------------------------------------------------------


def decode_and_resize(path: str) -> None:
    """The floor: what any screener must do before a model sees the image."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail((FLOOR_SIDE, FLOOR_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)


def run_task(screener: Screener, task: Task) -> tuple[str, Any]:
    kind, path, context = task
    try:
        if kind == "floor":
            decode_and_resize(path)
            return "ok", {}
        return "ok", screener.check_image(Path(path).read_bytes(), context=context).timings_ms
    except Exception as exc:  # reported to the parent, which stops the benchmark
        return "error", f"{path}: {type(exc).__name__}: {exc}"


def worker(tasks: Queue[Task | None], results: Queue[tuple[str, Any]],
           warmup: list[Task]) -> None:
    screener = Screener(ScreeningSettings.from_env(model_threads=1, cascade="auto"))
    for task in warmup:
        status, payload = run_task(screener, task)
        if status == "error":
            results.put((status, payload))
            return
    results.put(("ready", os.getpid()))
    while (task := tasks.get()) is not None:
        results.put(run_task(screener, task))


class RssSampler(threading.Thread):
    """Samples the summed RSS of the given processes; ``take_peak`` returns and resets it."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self.stopped = threading.Event()

    def sample(self) -> int:
        total = 0
        for process in self.processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def run(self) -> None:
        while not self.stopped.wait(RSS_SAMPLE_S):
            self.peak = max(self.peak, self.sample())

    def take_peak(self) -> float:
        now = self.sample()
        peak, self.peak = max(self.peak, now), now
        return peak / 2**20


class WorkerPool:
    def __init__(self, count: int, warmup: list[Task]) -> None:
        context = mp.get_context("spawn")
        self.count = count
        self.tasks: Queue[Task | None] = context.Queue()
        self.results: Queue[tuple[str, Any]] = context.Queue()
        self.processes = [
            context.Process(target=worker, args=(self.tasks, self.results, warmup), daemon=True)
            for _ in range(count)
        ]
        for process in self.processes:
            process.start()
        self.sampler = RssSampler([p.pid for p in self.processes if p.pid is not None])
        self.sampler.start()
        for _ in range(count):
            self._result(expect="ready")
        self.warmup_peak_rss_mib = self.sampler.take_peak()

    def _result(self, expect: str = "ok") -> Any:
        status, payload = self.results.get(timeout=900)
        if status != expect:
            raise RuntimeError(f"worker said {status}: {payload}")
        return payload

    def run(self, kind: str, mix: Mix) -> Phase:
        self.sampler.take_peak()
        started = time.perf_counter()
        for path in mix.paths:
            self.tasks.put((kind, str(path), mix.context))
        timings: list[dict[str, float]] = [self._result() for _ in mix.paths]
        seconds = time.perf_counter() - started
        return Phase(self.count, mix.name, kind, len(mix.paths), round(seconds, 3),
                     round(len(mix.paths) / seconds, 2), round(self.sampler.take_peak(), 1),
                     mean_timings(timings),
                     round(sum("faces" in t for t in timings) / len(timings), 3))

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            process.join(timeout=60)
        self.sampler.stopped.set()


@contextmanager
def worker_pool(count: int, warmup: list[Task]) -> Iterator[WorkerPool]:
    pool = WorkerPool(count, warmup)
    try:
        yield pool
    finally:
        pool.close()


def mean_timings(timings: list[dict[str, float]]) -> dict[str, float]:
    """Mean milliseconds per signal, over the images on which that signal ran."""
    keys = dict.fromkeys(key for t in timings for key in t)  # pipeline order
    return {key: round(float(np.mean([t[key] for t in timings if key in t])), 2)
            for key in keys}


# --- measuring and reporting -----------------------------------------------------------


def warmup_tasks(mixes: list[Mix]) -> list[Task]:
    return [("screen", str(path), mix.context) for mix in mixes
            for path in mix.paths[:WARMUP_PER_MIX]]


def measure(mixes: list[Mix], workers: int) -> tuple[list[Phase], float]:
    """Floor then screening for every mix on one warm pool; also the warm-up's peak RSS."""
    with worker_pool(workers, warmup_tasks(mixes)) as pool:
        phases = [pool.run(kind, mix) for mix in mixes for kind in ("floor", "screen")]
        return phases, pool.warmup_peak_rss_mib


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return {
        "cpus": os.cpu_count(),
        "cpu_model": names[0] if names else "unknown",
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(phases: list[Phase]) -> list[str]:
    signals = list(dict.fromkeys(key for p in phases for key in p.mean_ms))
    lines = ["| workers | mix | screened img/s | floor img/s | floor/screen | peak RSS MiB | "
             + " | ".join(f"{s} ms" for s in signals) + " | faces ran |",
             "|---:|---|---:|---:|---:|---:|" + "---:|" * (len(signals) + 1)]
    floors = {(p.workers, p.mix): p for p in phases if p.kind == "floor"}
    for p in (p for p in phases if p.kind == "screen"):
        floor = floors[(p.workers, p.mix)]
        cells = " | ".join(f"{p.mean_ms[s]:.1f}" if s in p.mean_ms else "-" for s in signals)
        lines.append(f"| {p.workers} | {p.mix} | {p.images_per_s:.1f} | "
                     f"{floor.images_per_s:.1f} | {floor.images_per_s / p.images_per_s:.1f}x | "
                     f"{p.peak_rss_mib:.0f} | {cells} | {100 * p.faces_ran:.0f}% |")
    return lines


def targets(phases: list[Phase], workers: int, peak_rss_mib: float) -> dict[str, Any]:
    rate = {p.mix: p.images_per_s for p in phases if p.kind == "screen" and p.workers == workers}
    return {
        "benign_images_per_s": [rate["benign"], TARGET_BENIGN, rate["benign"] >= TARGET_BENIGN],
        "face_heavy_images_per_s": [rate["face-heavy"], TARGET_FACE_HEAVY,
                                    rate["face-heavy"] >= TARGET_FACE_HEAVY],
        "peak_rss_mib": [peak_rss_mib, TARGET_RSS_MIB, peak_rss_mib <= TARGET_RSS_MIB],
    }


def target_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"Targets at {result['workers']} workers (set for 2 cores; this machine has "
             f"{result['machine']['cpus']}):"]
    for name, (value, target, ok) in result["targets"].items():
        relation = "<=" if name == "peak_rss_mib" else ">="
        lines.append(f"- {name}: {value:.1f} (target {relation} {target:g}): "
                     f"{'PASS' if ok else 'FAIL'}")
    return lines


def report(result: dict[str, Any], phases: list[Phase]) -> str:
    m = result["machine"]
    return "\n".join([
        f"# Throughput: {result['images_per_mix']} images per mix, {SIDE}-px JPEG q{QUALITY}",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), load average at start "
        f"{m['load_average_at_start']}, {m['date_utc']}.",
        "Per-signal columns: mean ms over the images on which the signal ran; peak RSS: "
        "all worker processes together, sampled every 50 ms (shared pages counted per process).",
        "",
        *table(phases),
        "",
        *target_lines(result),
    ])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images per mix")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (1 worker is always measured too)")
    parser.add_argument("--set-dir", type=Path, default=Path("bench/out/throughput-set"),
                        help="where the benchmark JPEGs are written (emptied first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.images <= WARMUP_PER_MIX or args.workers < 1:
        parser.error(f"need --images > {WARMUP_PER_MIX} and --workers >= 1")
    return args


def main() -> None:
    args = parse_args()
    info = machine()
    mixes = build_mixes(args.set_dir, args.images, args.seed)
    phases: list[Phase] = []
    peak_rss = 0.0
    for workers in sorted({1, args.workers}):
        measured, warmup_rss = measure(mixes, workers)
        phases += measured
        if workers == args.workers:
            peak_rss = max([warmup_rss, *(p.peak_rss_mib for p in measured)])
    result = {
        "machine": info,
        "images_per_mix": args.images,
        "workers": args.workers,
        "peak_rss_mib": round(peak_rss, 1),
        "targets": targets(phases, args.workers, peak_rss),
        "phases": [asdict(p) for p in phases],
    }
    print(report(result, phases))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
