"""Gateway overhead and prompt screens per second over HTTP, with the server in its own process.

Starts ``waakhond serve`` (demo generator, fresh data folder under a temporary directory) on a
free loopback port as a subprocess, so client and server do not share a GIL, and measures:

1. the overhead per generated 1024x1024 image: sequential POST /v1/images/generations with
   response_format b64_json, total client latency minus a baseline measured here: the demo
   generator's own time for the same prompt and size plus base64-encoding its PNG;
2. prompt screens per second: POST /v1/screen/prompt with harmless COCO captions at several
   concurrencies (threads, one keep-alive connection each);
3. the server's resident memory after warm-up and after the runs.

Then, with the server stopped, it times the stages of one generation request in-process
(prompt screening, demo generation, output screening and its detectors, watermark, C2PA
signing, re-encoding, the decision and generation records) and lists cProfile's top functions.
Run from the repository root:

    .venv/bin/python bench/gateway.py [--generations 40] [--screens 500] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import csv
import json
import os
import pstats
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from throughput import machine  # the same machine description as the other benches

from waakhond.gateway.upstream import DemoUpstream, ImageRequest

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT.parent / "shared" / "data" / "prompts"
NUDE_CAPTION = re.compile(r"\b(nude|naked|topless|nudity)\b", re.IGNORECASE)
SIZE = "1024x1024"
TARGET_OVERHEAD_P99_MS = 250.0
TARGET_SCREENS_PER_S = 200.0
START_TIMEOUT_S = 240.0
T = TypeVar("T")
REQUEST_TIMEOUT_S = 120.0
SUBJECTS = ("a lighthouse on a cliff", "a bowl of ripe pears", "a red bicycle by a canal",
            "a mountain lake at dawn", "a cat asleep on a windowsill", "a busy fish market",
            "an old stone bridge in fog", "a field of sunflowers", "a tram in the rain",
            "a teapot and two cups", "a sailing boat in a harbour", "a library reading room")
STYLES = ("watercolour", "oil painting", "pencil sketch", "photograph", "linocut", "pastel")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    token: str


# --- the server process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server_process(folder: Path, port: int) -> Iterator[Server]:
    """``waakhond serve`` on loopback with its own data folder; killed on the way out."""
    env = {**os.environ, "WAAKHOND_DATA": str(folder / "data")}
    log = (folder / "serve.log").open("wb")
    command = [str(ROOT / ".venv" / "bin" / "waakhond"), "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        admin = wait_ready(process, url, folder / "data" / "admin-key.txt", folder / "serve.log")
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"}) as http:
            made = http.post("/v1/admin/keys", json={
                "name": "bench", "scopes": ["generate", "screen"],
                "requests_per_minute": 1_000_000})
            made.raise_for_status()
        yield Server(url, process.pid, made.json()["token"])
    finally:
        stop(process)
        log.close()


def wait_ready(process: subprocess.Popen[bytes], url: str, key_file: Path, log: Path) -> str:
    """The admin key, once the server is ready (models loaded) and has written it."""
    def admin_key() -> str | None:
        ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        return key_file.read_text().strip() if ready and key_file.exists() else None

    return wait_for(process, log, admin_key, START_TIMEOUT_S)


def wait_for(process: subprocess.Popen[bytes], log: Path, answer: Callable[[], T | None],
                timeout_s: float) -> T:
    """Poll ``answer`` until it gives something; fail with the server's log if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n"
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            found = answer()
        except httpx.HTTPError:
            found = None
        if found is not None:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready after {timeout_s:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session (start_new_session=True)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn (and its worker supervisor) stop cleanly
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: any workers go with it
        process.wait(timeout=15)


def rss_mib(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def server_seconds(url: str, route: str) -> tuple[float, float]:
    """(count, sum of seconds) of the server's own request histogram for ``route``, 200s."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = {}
    for name in ("count", "sum"):
        pattern = (rf'^waakhond_request_seconds_{name}\{{route="{re.escape(route)}",'
                   rf'status="200"\}} (\S+)$')
        match = re.search(pattern, text, re.MULTILINE)
        found[name] = float(match.group(1)) if match else 0.0
    return found["count"], found["sum"]


# --- 1. overhead per generated image -----------------------------------------------------


def prompt(index: int) -> str:
    return (f"{SUBJECTS[index % len(SUBJECTS)]}, {STYLES[index // len(SUBJECTS) % len(STYLES)]}"
            f" #{index}")


def baseline_ms(text: str, repeats: int = 3) -> float:
    """The demo generator's own time plus base64 of its PNG: the best of ``repeats``."""
    upstream, best = DemoUpstream(), float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for image in upstream.create(ImageRequest(prompt=text, size=SIZE)):
            base64.b64encode(image).decode()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def generate(http: httpx.Client, text: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = http.post("/v1/images/generations", json={
        "prompt": text, "size": SIZE, "response_format": "b64_json"})
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"generation answered {answer.status_code}: {answer.text[:300]}")
    return elapsed, len(answer.json()["data"][0]["b64_json"])


def measure_generations(server: Server, count: int, offset: int) -> dict[str, Any]:
    latencies, baselines, sizes = [], [], []
    before = server_seconds(server.url, "/v1/images/generations")
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S,
                      headers={"Authorization": f"Bearer {server.token}"}) as http:
        for index in range(offset, offset + count):
            text = prompt(index)
            latency, size = generate(http, text)
            latencies.append(latency)
            sizes.append(size)
            baselines.append(baseline_ms(text))
    after = server_seconds(server.url, "/v1/images/generations")
    overheads = [a - b for a, b in zip(latencies, baselines, strict=True)]
    served = after[0] - before[0]
    return {
        "n": count,
        "latency_ms": summary(latencies),
        "baseline_ms": summary(baselines),
        "overhead_ms": summary(overheads),
        "server_mean_ms": (after[1] - before[1]) / served * 1000 if served else float("nan"),
        "b64_kib": statistics.mean(sizes) / 1024,
    }


# --- 2. prompt screens per second --------------------------------------------------------


def captions(count: int) -> list[str]:
    rows = csv.DictReader((PROMPTS / "coco_10k.csv").open(encoding="utf-8"))
    benign = [r["prompt"] for r in rows if not NUDE_CAPTION.search(r["prompt"])]
    step = max(len(benign) // count, 1)  # spread over the file, not its first rows
    return benign[::step][:count]


def measure_screens(server: Server, texts: list[str], concurrency: int) -> dict[str, Any]:
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()
    actions: dict[str, int] = defaultdict(int)

    def client() -> httpx.Client:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S,
                                      headers={"Authorization": f"Bearer {server.token}"})
            with lock:
                clients.append(local.http)
        return local.http  # type: ignore[no-any-return]

    def screen(text: str) -> float:
        http = client()
        started = time.perf_counter()
        answer = http.post("/v1/screen/prompt", json={"prompt": text})
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"screening answered {answer.status_code}: {answer.text[:300]}")
        with lock:
            actions[answer.json()["action"]] += 1
        return elapsed

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(screen, texts[:concurrency * 2]))  # open the connections first
        actions.clear()
        cpu = time.process_time()
        started = time.perf_counter()
        latencies = list(pool.map(screen, texts))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    for http in clients:
        http.close()
    return {"concurrency": concurrency, "n": len(texts), "per_s": len(texts) / seconds,
            "latency_ms": summary(latencies), "client_cpu_share": cpu / seconds,
            "actions": dict(actions)}


# --- in-process stage timing and profile -------------------------------------------------


class Stages:
    """Wraps callables on objects to add their wall time per call to named stages."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attribute: str, stage: str) -> None:
        inner: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.current[stage] += (time.perf_counter() - started) * 1000

        setattr(owner, attribute, timed)

    def close_request(self) -> None:
        for stage, value in self.current.items():
            self.ms[stage].append(value)
        self.current.clear()


def profile_in_process(folder: Path, count: int) -> dict[str, Any]:
    """Time the stages of ``count`` generations on an in-process gateway (no HTTP)."""
    os.environ["WAAKHOND_DATA"] = str(folder / "profile-data")
    import waakhond.provenance.marker as marker_module
    from waakhond.config import GatewaySettings
    from waakhond.gateway.service import Request
    from waakhond.gateway.setup import build_gateway
    from waakhond.store import Database

    db = Database(f"sqlite:///{folder / 'profile.db'}")
    gateway = build_gateway(GatewaySettings.from_env(), db=db)
    caller = gateway.keys.authenticate(gateway.keys.create("bench", ["generate"]).token)
    request = Request(caller)
    gateway.screener.prompt_detector.run_text("a red bicycle", has_image=False)
    stages = Stages()
    detectors: dict[str, list[float]] = defaultdict(list)
    screen_image = gateway.screener.check_image

    def check_image(*args: Any, **kwargs: Any) -> Any:
        verdict = screen_image(*args, **kwargs)
        for name, value in verdict.timings_ms.items():
            detectors[name].append(value)
        return verdict

    gateway.screener.check_image = check_image  # type: ignore[method-assign]
    stages.wrap(gateway.screener, "check_prompt", "prompt screen")
    stages.wrap(gateway.upstream, "create", "demo generation")
    stages.wrap(gateway.screener, "check_image", "output screen")
    stages.wrap(gateway.marker, "mark", "marking (all)")
    stages.wrap(marker_module, "embed_watermark", "watermark embed")
    stages.wrap(gateway.marker._signer, "sign", "C2PA sign")
    stages.wrap(gateway.decisions, "record", "decision log")
    stages.wrap(gateway.generations, "add", "generation log")
    stages.wrap(gateway.users, "admit", "end-user check")
    totals = []
    for index in range(-2, count):  # two warm-up requests, not counted
        started = time.perf_counter()
        gateway.generate(request, ImageRequest(prompt=prompt(1000 + index), size=SIZE))
        total = (time.perf_counter() - started) * 1000
        if index < 0:
            stages.current.clear()
            detectors.clear()
            continue
        totals.append(total)
        stages.close_request()
    means = {stage: statistics.mean(values) for stage, values in stages.ms.items()}
    # The wrapped stages do not nest, except the two inside marking.
    top_level = sum(value for stage, value in means.items()
                    if stage not in ("watermark embed", "C2PA sign"))
    means["other (gateway code)"] = statistics.mean(totals) - top_level
    marking = means.pop("marking (all)", 0.0)
    means["re-encode (PNG) + rest of marking"] = (
        marking - means.get("watermark embed", 0.0) - means.get("C2PA sign", 0.0))
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(3):
        gateway.generate(request, ImageRequest(prompt=prompt(2000 + index), size=SIZE))
    profiler.disable()
    return {"n": count, "total_ms": summary(totals), "stage_mean_ms": means,
            "output_detector_mean_ms": {k: statistics.mean(v) for k, v in detectors.items()},
            "cprofile_top_tottime": top_functions(pstats.Stats(profiler), 3)}


def top_functions(stats: pstats.Stats, requests: int, count: int = 12) -> list[str]:
    """The functions with the most own time, in ms per request."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda kv: -kv[1][2])[:count]
    out = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in rows:
        where = re.sub(r".*site-packages/", "", filename.replace(str(ROOT) + "/", ""))
        out.append(f"{tottime / requests * 1000:7.1f} ms own, {cumtime / requests * 1000:7.1f}"
                   f" ms cum, {calls // requests:5d} calls/request  {where}:{line}({function})")
    return out


# --- reporting ---------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p99": percentile(ordered, 0.99),
            "mean": statistics.mean(ordered), "max": ordered[-1]}


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(result: dict[str, Any]) -> str:
    m, g = result["machine"], result["generation"]
    best = max(result["screens"], key=lambda s: s["per_s"])
    lines = [
        "## Gateway over HTTP: overhead per image and prompt screens per second",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), load average at start "
        f"{m['load_average_at_start']} (at the end {result['load_average_at_end']}), "
        f"{m['date_utc']}. Command: `{result['command']}`.",
        "The server is `waakhond serve` (demo generator) in its own process on loopback; the "
        "client runs in the benchmark process on the same cores.",
        "",
        f"Generation, {SIZE}, b64_json, {g['n']} sequential requests after "
        f"{result['warmup_generations']} warm-up ones (about {g['b64_kib']:.0f} KiB of base64 "
        "an answer). Baseline: the demo generator's own time for the same prompt plus base64, "
        "in the client process (best of 3); overhead = latency - baseline.",
        "",
        "| ms | p50 | p99 | mean | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, key in (("latency (client)", "latency_ms"), ("baseline", "baseline_ms"),
                      ("overhead", "overhead_ms")):
        s = g[key]
        lines.append(f"| {name} | {s['p50']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} | "
                     f"{s['max']:.0f} |")
    lines += ["", f"Server-side mean for the route (its own request histogram): "
                  f"{g['server_mean_ms']:.0f} ms.", "",
              f"Prompt screening, POST /v1/screen/prompt, {best['n']} COCO captions per run "
              "(captions describing nudity left out), one keep-alive connection per thread:",
              "",
              "| concurrency | screens/s | p50 ms | p99 ms | client CPU (cores) | actions |",
              "|---:|---:|---:|---:|---:|---|"]
    for s in result["screens"]:
        actions = ", ".join(f"{k} {v}" for k, v in sorted(s["actions"].items()))
        lines.append(f"| {s['concurrency']} | {s['per_s']:.0f} | {s['latency_ms']['p50']:.1f} "
                     f"| {s['latency_ms']['p99']:.1f} | {s['client_cpu_share']:.2f} | "
                     f"{actions} |")
    rss = result["rss_mib"]
    lines += ["", f"Server RSS: {rss['after_warmup']:.0f} MiB after start-up and warm-up, "
                  f"{rss['after_runs']:.0f} MiB after the runs.", ""]
    if "profile" in result:
        p = result["profile"]
        lines += [f"In-process stage times per generation (no HTTP, server stopped; mean of "
                  f"{p['n']}, total p50 {p['total_ms']['p50']:.0f} ms):", "",
                  "| stage | mean ms |", "|---|---:|"]
        for stage, value in sorted(p["stage_mean_ms"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {stage} | {value:.1f} |")
        detectors = ", ".join(f"{k} {v:.1f}" for k, v in p["output_detector_mean_ms"].items())
        lines += ["", f"Output screen by detector (mean ms): {detectors}.", ""]
    overhead_p99 = g["overhead_ms"]["p99"]
    lines += [
        "Targets (2 cores):",
        f"- overhead p99 per 1024x1024 image: {overhead_p99:.0f} ms (target <= "
        f"{TARGET_OVERHEAD_P99_MS:g}): {verdict(overhead_p99 <= TARGET_OVERHEAD_P99_MS)}",
        f"- prompt screens/s (best concurrency, {best['concurrency']}): {best['per_s']:.0f} "
        f"(target >= {TARGET_SCREENS_PER_S:g}): "
        f"{verdict(best['per_s'] >= TARGET_SCREENS_PER_S)}",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=40,
                        help="sequential generation requests measured")
    parser.add_argument("--screens", type=int, default=500, help="prompts per concurrency")
    parser.add_argument("--concurrency", default="1,4,16",
                        help="comma-separated client concurrencies for prompt screening")
    parser.add_argument("--profile", type=int, default=10,
                        help="in-process generations timed by stage afterwards (0: skip)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 generations, 60 screens, concurrency 1,4, profile 3")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.generations, args.screens, args.concurrency, args.profile = 8, 60, "1,4", 3
    try:
        args.levels = [int(v) for v in args.concurrency.split(",")]
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 1,4,16")
    if args.generations < 2 or args.screens < 1 or min(args.levels) < 1 or args.profile < 0:
        parser.error("need --generations >= 2, --screens >= 1, concurrencies >= 1")
    return args


def main() -> None:
    args = parse_args()
    info = machine()
    texts = captions(args.screens)
    warmup = 3
    result: dict[str, Any] = {
        "machine": info,
        "command": shlex.join([".venv/bin/python", "bench/gateway.py", *sys.argv[1:]]),
        "warmup_generations": warmup,
    }
    with tempfile.TemporaryDirectory(prefix="waakhond-bench-") as tmp:
        folder = Path(tmp)
        with server_process(folder, free_port()) as server:
            measure_generations(server, warmup, offset=500)
            measure_screens(server, texts[:20], 1)
            after_warmup = rss_mib(server.pid)
            result["generation"] = measure_generations(server, args.generations, offset=0)
            result["screens"] = [measure_screens(server, texts, level) for level in args.levels]
            result["rss_mib"] = {"after_warmup": after_warmup, "after_runs": rss_mib(server.pid)}
        if args.profile:
            result["profile"] = profile_in_process(folder, args.profile)
    result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(report(result))
    if "profile" in result:
        print("\ncProfile, top functions by own time (3 in-process generations):")
        print("\n".join(result["profile"]["cprofile_top_tottime"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
