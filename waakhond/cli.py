"""The ``waakhond`` command. Thin: it parses arguments and calls the same services as the API.

Exit codes (documented in the README):
  0  everything was screened and nothing is blocked
  2  bad usage, or some input could not be screened (unreadable, too large, unknown country)
  3  everything was screened and at least one verdict blocks the content
     (``match``: at least one image matches a bank)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waakhond.cli_accounts import add_commands as add_account_commands
from waakhond.cli_banks import add_commands as add_bank_commands
from waakhond.cli_consent import add_commands as add_consent_commands
from waakhond.cli_gateway import add_commands as add_gateway_commands
from waakhond.config import ScreeningSettings
from waakhond.core import Context
from waakhond.errors import UnsupportedType, WaakhondError

EXIT_OK, EXIT_UNREADABLE, EXIT_BLOCKED = 0, 2, 3


@dataclass(frozen=True)
class Outcome:
    """One file's result, as it travels back from a worker process."""

    source: str
    verdict: dict[str, Any] | None = None
    text: str | None = None
    error_code: str | None = None
    error: str | None = None
    from_folder: bool = False

    @property
    def skipped(self) -> bool:
        # Inside a folder, files that are not images at all are skipped, not errors.
        return self.from_folder and self.error_code == UnsupportedType.code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_OK
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # A reader such as `head` stopped reading; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waakhond",
        description="Screen images for sexual content of minors and non-consensual "
                    "sexual imagery, with an explained, jurisdiction-aware verdict.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="screen image files or folders")
    check.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    check.add_argument("--context", default="upload",
                       choices=[c.value for c in Context if c is not Context.PROMPT],
                       help="where the image comes from (default: upload)")
    check.add_argument("--country", help="ISO 3166 country code for the jurisdiction, e.g. NL")
    check.add_argument("--json", action="store_true", help="one JSON object per image")
    check.add_argument("--workers", type=int, default=None,
                       help="processes for folders (default: up to 2, one per core)")
    check.add_argument("--cascade", choices=["auto", "always"], default=None,
                       help="run costly detectors only when the policy needs them (auto, "
                            "default) or every detector on every image (always)")
    check.set_defaults(handler=_check)

    prompt = commands.add_parser(
        "check-prompt", help="screen a prompt or an edit instruction before generating")
    prompt.add_argument("text", help="the prompt; '-' reads one prompt per line from stdin")
    prompt.add_argument("--image", type=Path,
                        help="the photo to be edited: makes this an edit request")
    prompt.add_argument("--country", help="ISO 3166 country code for the jurisdiction")
    prompt.add_argument("--json", action="store_true", help="one JSON object per prompt")
    prompt.set_defaults(handler=_check_prompt)

    policy = commands.add_parser("policy", help="show the rules that apply in a country")
    policy.add_argument("--country", help="ISO 3166 country code (default: base policy)")
    policy.set_defaults(handler=_policy)
    add_bank_commands(commands)
    add_gateway_commands(commands)
    add_consent_commands(commands)
    add_account_commands(commands)
    return parser


# ---------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from waakhond.policy import normalise_country

    try:
        normalise_country(args.country)
    except WaakhondError as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    targets = list(_expand(args.paths))
    if not targets:
        print("waakhond: no files to screen", file=sys.stderr)
        return EXIT_UNREADABLE
    workers = _worker_count(args.workers, len(targets))
    overrides: dict[str, Any] = {"model_threads": 1 if workers > 1 else 2}
    if args.cascade:
        overrides["cascade"] = args.cascade
    job = (args.context, args.country, overrides)
    outcomes = _run(targets, job, workers)
    return _report(outcomes, args.json, show_progress=len(targets) > 1, unit="files")


def _expand(paths: list[Path]) -> Iterator[tuple[Path, bool]]:
    """Files to screen, each with whether it was found inside a folder."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(p.startswith(".") for p in file.relative_to(path).parts)
                if file.is_file() and not hidden:
                    yield file, True
        else:
            yield path, False


def _worker_count(requested: int | None, files: int) -> int:
    if requested is not None:
        return max(1, requested)
    return max(1, min(2, os.cpu_count() or 1, files))


_screener = None
_job: tuple[str, str | None, dict[str, Any]] | None = None


def _init_worker(job: tuple[str, str | None, dict[str, Any]]) -> None:
    global _screener, _job
    from waakhond.screening import Screener

    _job = job
    _screener = Screener(ScreeningSettings.from_env(**job[2]), matcher=_bank_matcher())


def _bank_matcher() -> Any:
    """The default database's banks: matches are reported, and what is blocked as CSAM or
    NCII joins the own_removals bank."""
    from waakhond.hashing.banks import BankService
    from waakhond.hashing.matcher import HashMatcher
    from waakhond.store import Database

    return HashMatcher(BankService(Database()))


def _screen_one(target: tuple[Path, bool]) -> Outcome:
    path, from_folder = target
    assert _screener is not None and _job is not None
    context, country, _ = _job
    try:
        verdict = _screener.check_file(path, context=context, country=country)
    except WaakhondError as exc:
        return Outcome(str(path), error_code=exc.code, error=str(exc), from_folder=from_folder)
    except OSError as exc:
        return Outcome(str(path), error_code="unreadable_file", error=exc.strerror or str(exc),
                       from_folder=from_folder)
    return Outcome(str(path), verdict=verdict.to_dict(), text=str(verdict),
                   from_folder=from_folder)


def _run(targets: list[tuple[Path, bool]], job: tuple[str, str | None, dict[str, Any]],
         workers: int) -> Iterator[Outcome]:
    if workers == 1:
        _init_worker(job)
        yield from map(_screen_one, targets)
        return
    # spawn, not fork: ONNX Runtime and dlib are not safe to fork once initialised.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        yield from pool.imap(_screen_one, targets, chunksize=2)


def _report(outcomes: Iterator[Outcome], as_json: bool, show_progress: bool,
            unit: str) -> int:
    from tqdm import tqdm

    counts: Counter[str] = Counter()
    unreadable = blocked = 0
    for outcome in tqdm(outcomes, disable=not show_progress or None, unit="img", file=sys.stderr):
        if outcome.skipped:
            counts["skipped (not an image)"] += 1
        elif outcome.verdict is None:
            unreadable += 1
            counts["unreadable"] += 1
            _emit_error(outcome, as_json)
        else:
            action = outcome.verdict["action"]
            counts[action] += 1
            blocked += action in ("block", "block_and_report")
            print(json.dumps(outcome.verdict) if as_json else outcome.text, flush=True)
    if show_progress:
        summary = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        print(f"waakhond: {sum(counts.values())} {unit}: {summary}", file=sys.stderr)
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_BLOCKED if blocked else EXIT_OK


def _emit_error(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        error = {"code": outcome.error_code, "message": outcome.error}
        print(json.dumps({"source": outcome.source, "error": error}), flush=True)
    print(f"waakhond: {outcome.source}: {outcome.error}", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# check-prompt
# ---------------------------------------------------------------------------------------


def _check_prompt(args: argparse.Namespace) -> int:
    from waakhond.screening import Screener

    prompts = sys.stdin.read().splitlines() if args.text == "-" else [args.text]
    try:
        image = args.image.read_bytes() if args.image else None
        screener = Screener(ScreeningSettings.from_env())
        outcomes = [_prompt_outcome(screener, text, image, args.country)
                    for text in prompts if text.strip() or args.text != "-"]
    except (WaakhondError, OSError) as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return _report(iter(outcomes), args.json, show_progress=len(outcomes) > 1, unit="prompts")


def _prompt_outcome(screener: Any, text: str, image: bytes | None,
                    country: str | None) -> Outcome:
    label = text if len(text) <= 60 else text[:57] + "..."
    try:
        verdict = screener.check_prompt(text, image=image, country=country, source=label)
    except WaakhondError as exc:
        return Outcome(label, error_code=exc.code, error=str(exc))
    return Outcome(label, verdict=verdict.to_dict(), text=str(verdict))


# ---------------------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------------------


def _policy(args: argparse.Namespace) -> int:
    from waakhond.policy import load_policy

    try:
        policy = load_policy(args.country)
    except WaakhondError as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(f"policy {policy.version}: {' > '.join(policy.layers)}")
    for rule in policy.rules:
        print(f"\n[{rule.id}] -> {rule.action.value}  labels: {', '.join(rule.labels) or '-'}")
        print(f"  {rule.text}")
        print(f"  when: {rule.when.model_dump(exclude_defaults=True)}")
        if rule.legal_source:
            print(f"  law: {rule.legal_source}")
        if rule.unverified:
            print(f"  unverified: {rule.unverified}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
