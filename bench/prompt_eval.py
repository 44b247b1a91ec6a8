"""Prompt screening quality and speed.

    .venv/bin/python bench/prompt_eval.py [--limit N] [--out bench/out/prompt_eval.json]

Quality on the development sets in ../shared/data/prompts (never trained on) and on the
project's probe set (tests/data/prompt_probes.jsonl, written apart from the training corpus):
- I2P: recall on prompts with nudity_percentage >= 50, and on category "sexual" with hard == 1;
- COCO-10k and PartiPrompts: false-positive rate. COCO captions that themselves describe
  nudity ("a nude lady ...") are counted as positives and left out of the false-positive rate;
  the script lists them;
- probes: recall per language and per obfuscation technique, false positives on look-alikes.

"Flagged" means the verdict is not a plain allow: it blocks, or it allows with a label such as
SUGGESTIVE (the gateway then screens the output strictly). "Blocked" means block or worse.
Speed: single-prompt latency p50/p99 and resident memory added by the prompt models.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from waakhond import Screener
from waakhond.config import ScreeningSettings
from waakhond.core import Verdict

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT.parent / "shared" / "data" / "prompts"
PROBES = ROOT / "tests" / "data" / "prompt_probes.jsonl"
HARMFUL = {"sexual", "undress", "suggestive"}
NUDE_CAPTION = re.compile(r"\b(nude|naked|topless|nudity)\b", re.IGNORECASE)
TARGET_FP = 0.01
TARGET_I2P_RECALL = 0.95
# The ceiling of a text-only screen on I2P: most nudity-prone I2P prompts never ask for nudity,
# so the bench also reports what flagging every prompt that names a person or a body would
# reach, and what it would cost on captions of everyday scenes.
PERSON_OR_BODY = re.compile(
    r"\b(wom[ae]n|female|girls?|lady|ladies|goddess\w*|queen|princess|she|her|mermaid|witch|"
    r"actress|model|venus|aphrodite|eve|nymph\w*|bride|wife|maiden|m[ae]n|male|boys?|guy|king|"
    r"god|he|his|him|prince|adam|person|people|human|portrait|face|character|body|bodies|skin|"
    r"flesh|figure|torso|curv\w*|bath\w*|shower|bed|beach|pool|sauna)\b", re.IGNORECASE)


def flagged(verdict: Verdict) -> bool:
    return verdict.action.value != "allow" or bool(verdict.labels)


def blocked(verdict: Verdict) -> bool:
    return verdict.blocks


def screen(screener: Screener, texts: Iterable[str]) -> tuple[list[Verdict], list[float]]:
    verdicts, latencies = [], []
    for text in texts:
        started = time.perf_counter()
        verdicts.append(screener.check_prompt(text))
        latencies.append((time.perf_counter() - started) * 1000)
    return verdicts, latencies


def share(values: list[bool]) -> float:
    return sum(values) / len(values) if values else float("nan")


def flagged_or_naming_a_person(texts: list[str], verdicts: list[Verdict]) -> float:
    return share([flagged(v) or bool(PERSON_OR_BODY.search(t))
                  for t, v in zip(texts, verdicts, strict=True)])


def use_share(verdicts: list[Verdict]) -> float:
    """The share of prompts the fast USE classifier scored (the rest went to e5)."""
    return share([(v.signals.get("prompt") or {}).get("embedding") == "use" for v in verdicts])


def i2p(screener: Screener, limit: int | None) -> dict[str, Any]:
    rows = list(csv.DictReader((PROMPTS / "i2p.csv").open(encoding="utf-8")))
    nudity = [r["prompt"] for r in rows if float(r["nudity_percentage"] or 0) >= 50][:limit]
    hard = [r["prompt"] for r in rows if "sexual" in r["categories"] and r["hard"] == "1"]
    hard = hard[:limit]
    # The nudity-prone vocabulary was written after reading the >= 50 prompts the screen
    # missed; this band was never read, so it tells how that vocabulary generalises.
    unread = [r["prompt"] for r in rows if 30 <= float(r["nudity_percentage"] or 0) < 50]
    unread = unread[:limit]
    result = {}
    for name, texts in (("nudity_percentage>=50", nudity), ("sexual_and_hard", hard),
                        ("nudity_percentage_30_to_50_unread", unread)):
        verdicts, _ = screen(screener, texts)
        result[name] = {"n": len(texts), "flagged": share([flagged(v) for v in verdicts]),
                        "blocked": share([blocked(v) for v in verdicts]),
                        "use_share": use_share(verdicts),
                        "flagged_or_naming_a_person": flagged_or_naming_a_person(texts,
                                                                                 verdicts)}
    return result


def benign_sets(screener: Screener, limit: int | None) -> tuple[dict[str, Any], list[float]]:
    coco = [r["prompt"] for r in csv.DictReader((PROMPTS / "coco_10k.csv").open())][:limit]
    parti_rows = list(csv.DictReader((PROMPTS / "parti_prompts.tsv").open(), delimiter="\t"))
    parti = [r["Prompt"] for r in parti_rows][:limit]
    people = [r["Prompt"] for r in parti_rows if r["Category"] == "People"][:limit]
    nude_captions = [t for t in coco if NUDE_CAPTION.search(t)]
    coco_benign = [t for t in coco if not NUDE_CAPTION.search(t)]
    result: dict[str, Any] = {}
    latencies: list[float] = []
    for name, texts in (("coco_10k", coco_benign), ("parti", parti), ("parti_people", people)):
        verdicts, times = screen(screener, texts)
        latencies += times
        result[name] = {
            "n": len(texts),
            "false_flagged": share([flagged(v) for v in verdicts]),
            "false_blocked": share([blocked(v) for v in verdicts]),
            "use_share": use_share(verdicts),
            "flagged_or_naming_a_person": flagged_or_naming_a_person(texts, verdicts),
            "examples": [t for t, v in zip(texts, verdicts, strict=True) if flagged(v)][:12],
        }
    caught, _ = screen(screener, nude_captions)
    result["coco_nude_captions"] = {"n": len(nude_captions), "texts": nude_captions,
                                    "flagged": share([flagged(v) for v in caught])}
    return result, latencies


def probes(screener: Screener) -> dict[str, Any]:
    rows = [json.loads(line) for line in PROBES.read_text("utf-8").splitlines() if line.strip()]
    by_lang: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_pass: dict[str, list[bool]] = defaultdict(list)
    misses, false_alarms = [], []
    benign_flags: list[bool] = []
    for row in rows:
        verdict = screener.check_prompt(row["text"])
        harmful = bool(HARMFUL & set(row["labels"]))
        if harmful:
            ok = flagged(verdict)
            by_lang[row["lang"]].append(ok)
            by_kind[row["kind"]].append(ok)
            by_pass[_probe_pass(row)].append(ok)
            if not ok:
                misses.append(row)
        else:
            wrong = verdict.blocks or any(label != "POSSIBLE_MINOR" for label in verdict.labels)
            benign_flags.append(wrong)
            if wrong:
                false_alarms.append({**row, "action": verdict.action.value,
                                     "labels": verdict.labels})
    return {
        "recall_by_language": {k: (share(v), len(v)) for k, v in sorted(by_lang.items())},
        "recall_by_kind": {k: (share(v), len(v)) for k, v in sorted(by_kind.items())},
        "recall_by_pass": {k: (share(v), len(v)) for k, v in sorted(by_pass.items())},
        "benign_false_alarm_rate": (share(benign_flags), len(benign_flags)),
        "misses": misses,
        "false_alarms": false_alarms,
    }


_PASSES = {"probe pass 2": "second pass", "probe pass 3": "third pass",
           "probe pass 4": "fourth pass", "probe pass 5": "fifth pass (held out)"}


def _probe_pass(row: dict[str, Any]) -> str:
    """The second pass (2026-11-23) was written by people who had seen none of the corpus,
    the lexicons or the first probes; its misses were then read and the lexicons extended
    from them (seventh session). The third pass's misses were read in the eighth, the fourth's
    in the ninth; the fifth, written then by people who had seen nothing of the project, is the
    fair measure (its obfuscated probes' misses were read: the notes say "probe pass 5; ...")."""
    note = (row.get("note") or "").split(";")[0]
    return _PASSES.get(note, "first pass")


def latency(latencies: list[float]) -> dict[str, float]:
    return {"n": len(latencies), "p50_ms": statistics.median(latencies),
            "p99_ms": statistics.quantiles(latencies, n=100)[98],
            "prompts_per_s": 1000 / statistics.mean(latencies)}


def long_prompt_latency(screener: Screener, limit: int | None) -> dict[str, float]:
    """Latency on the longest I2P prompts (tag lists of 320 to 1,100 characters)."""
    rows = csv.DictReader((PROMPTS / "i2p.csv").open(encoding="utf-8"))
    longest = sorted((r["prompt"] for r in rows), key=len)[-(limit or 300):]
    return latency(screen(screener, longest)[1])


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def report(result: dict[str, Any]) -> str:
    lines = [f"# Prompt screening evaluation ({result['date']})", ""]
    lines += ["| set | n | result | target |", "|---|---:|---|---|"]
    for name, row in result["i2p"].items():
        lines.append(f"| I2P {name} | {row['n']} | recall {row['flagged']:.1%} flagged, "
                     f"{row['blocked']:.1%} blocked (USE scored {row['use_share']:.0%}) | "
                     f">= {TARGET_I2P_RECALL:.0%} |")
    for name in ("coco_10k", "parti", "parti_people"):
        row = result["benign"][name]
        lines.append(f"| {name} | {row['n']} | {row['false_flagged']:.2%} flagged, "
                     f"{row['false_blocked']:.2%} blocked (USE scored {row['use_share']:.0%}) "
                     f"| <= {TARGET_FP:.0%} |")
    ceiling = {name: row["flagged_or_naming_a_person"]
               for name, row in (*result["i2p"].items(), *result["benign"].items())
               if "flagged_or_naming_a_person" in row}
    lines.append("| if every prompt naming a person or a body were flagged too | | "
                 + ", ".join(f"{name} {value:.1%}" for name, value in ceiling.items()) + " | |")
    nude = result["benign"]["coco_nude_captions"]
    lines.append(f"| COCO captions describing nudity (counted as positives) | {nude['n']} | "
                 f"{nude['flagged']:.0%} flagged | |")
    p = result["probes"]
    english = p["recall_by_language"].get("en", (float("nan"), 0))[0]
    lines += ["", "Probe recall per language (harmful probes flagged):",
              "", "| language | recall | n | within 5 pts |", "|---|---:|---:|---|"]
    for lang, (value, n) in p["recall_by_language"].items():
        close = "yes" if value >= english - 0.05 else "NO"
        lines.append(f"| {lang} | {value:.0%} | {n} | {close} |")
    lines += ["", "| probe kind | recall | n |", "|---|---:|---:|"]
    lines += [f"| {kind} | {value:.0%} | {n} |"
              for kind, (value, n) in p["recall_by_kind"].items()]
    lines += ["", "| probe pass | recall | n |", "|---|---:|---:|"]
    lines += [f"| {name} | {value:.0%} | {n} |"
              for name, (value, n) in p["recall_by_pass"].items()]
    rate, n = p["benign_false_alarm_rate"]
    lines += ["", f"Benign probes (look-alikes, minors alone, real people in benign edits) "
              f"wrongly flagged: {rate:.1%} of {n}.", ""]
    s = result["speed"]
    for name in ("everyday", "long"):
        t = s[name]
        lines.append(f"Latency per prompt, {name}: p50 {t['p50_ms']:.1f} ms, p99 "
                     f"{t['p99_ms']:.1f} ms over {t['n']} prompts ({t['prompts_per_s']:.0f} "
                     "prompts/s, one thread of work).")
    lines.append(f"Memory added by the prompt models: {s['rss_added_mib']:.0f} MiB after warming "
                 f"up (embedders and word lists), {s['rss_added_after_every_set_mib']:.0f} MiB "
                 "after every set.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="at most this many prompts per set")
    parser.add_argument("--out", type=Path, help="write the full results as JSON here")
    args = parser.parse_args()
    before = rss_mib()
    screener = Screener(ScreeningSettings.from_env(model_threads=2), detectors=[])
    screener.prompt_detector.warm_up()  # as the gateway does: embedders and word lists
    screener.check_prompt("warm up")
    rss_added = rss_mib() - before
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    benign, latencies = benign_sets(screener, args.limit)
    print("benign sets done", file=sys.stderr)
    result = {
        "date": started,
        "i2p": i2p(screener, args.limit),
        "benign": benign,
        "probes": probes(screener),
        "speed": {
            "everyday": latency(latencies),
            "long": long_prompt_latency(screener, args.limit),
            "rss_added_mib": rss_added,
        },
    }
    # What a long run adds beyond the warm-up (caches, allocator fragmentation).
    result["speed"]["rss_added_after_every_set_mib"] = rss_mib() - before
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(report(result))


if __name__ == "__main__":
    main()
