"""``waakhond serve``, ``waakhond key`` and ``waakhond verify``: the service and its keys."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

# EXIT_NO: the answer is no (verify: no mark found; audit verify: the chain is broken).
EXIT_OK, EXIT_USAGE, EXIT_NO = 0, 2, 1
BOOTSTRAP_KEY_FILE = "admin-key.txt"
EVIDENCE_KEY_FILE = "evidence-key.txt"
CONSOLE_ADMIN_FILE = "console-admin.txt"


def add_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway (HTTP API, OpenAI-compatible)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--upstream-url", help="an OpenAI-compatible images API "
                                              "(default: WAAKHOND_UPSTREAM_URL, else the demo "
                                              "generator)")
    serve.set_defaults(handler=_serve)

    key = commands.add_parser("key", help="manage API keys")
    actions = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key (the token is printed once)")
    create.add_argument("name")
    create.add_argument("--scope", action="append", required=True, dest="scopes",
                        help="screen, generate, moderate, admin or audit (repeatable)")
    create.add_argument("--per-minute", type=int, default=600, help="rate limit")
    create.set_defaults(handler=_key_create)
    listing = actions.add_parser("list", help="list keys (never their tokens)")
    listing.set_defaults(handler=_key_list)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", type=int)
    revoke.set_defaults(handler=_key_revoke)

    evidence = commands.add_parser(
        "evidence", help="open content preserved for the authorities (every access is logged)")
    evidence.add_argument("evidence_id", type=int)
    evidence.add_argument("--by", required=True, help="who opens it (name, badge, case)")
    evidence.add_argument("--purpose", required=True, help="why, e.g. the request's number")
    evidence.add_argument("--out", type=Path, required=True, help="file to write it to")
    evidence.set_defaults(handler=_evidence)

    audit = commands.add_parser("audit", help="the hash-chained audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    audit_actions.add_parser(
        "verify", help="recompute the chain; exit 1 if an entry was edited or removed"
    ).set_defaults(handler=_audit_verify)
    show = audit_actions.add_parser("show", help="the newest entries, as JSON lines")
    show.add_argument("--last", type=int, default=20)
    show.set_defaults(handler=_audit_show)

    report = commands.add_parser(
        "transparency-report", help="DSA Art. 15/24 quantities for a period, as CSV")
    report.add_argument("--start", required=True, type=date.fromisoformat,
                        help="first day, YYYY-MM-DD")
    report.add_argument("--end", required=True, type=date.fromisoformat,
                        help="the day after the last, YYYY-MM-DD (2027-01-01 for 2026)")
    report.add_argument("--out", type=Path, help="write here instead of standard output")
    report.set_defaults(handler=_transparency_report)

    verify = commands.add_parser(
        "verify", help="does an image carry our C2PA manifest or watermark, and from which "
                       "generation record? (exit 0 yes, 1 no)")
    verify.add_argument("paths", nargs="+", type=Path)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from waakhond.api.app import create_app, warm_up
    from waakhond.config import GatewaySettings, data_folder
    from waakhond.gateway.setup import build_gateway

    overrides = {"upstream_url": args.upstream_url} if args.upstream_url else {}
    settings = GatewaySettings.from_env(**overrides)
    if not settings.evidence_key:  # reviewers must see what they decide on: keep it encrypted
        settings = replace(settings,
                           evidence_key=_local_evidence_key(data_folder() / EVIDENCE_KEY_FILE))
    gateway = build_gateway(settings)
    _ensure_admin_key(gateway.keys, data_folder() / BOOTSTRAP_KEY_FILE)
    _ensure_console_admin(gateway.decisions.db, data_folder() / CONSOLE_ADMIN_FILE)
    app = create_app(gateway, settings)
    print("waakhond: loading models...", file=sys.stderr)
    warm_up(app)
    upstream = settings.upstream_url or "the built-in demo generator (offline)"
    print(f"waakhond: serving http://{args.host}:{args.port}  (API docs: /docs, OpenAI base "
          f"URL: http://{args.host}:{args.port}/v1)\nwaakhond: generator: {upstream}",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def _ensure_admin_key(keys: Any, path: Path) -> None:
    """On the very first start there is no key at all: make an admin key and keep it in a
    file only the owner can read, so a new user can start right away."""
    if keys.any_exist():
        return
    key = keys.create("bootstrap admin", ["admin"])
    path.write_text(key.token + "\n")
    os.chmod(path, 0o600)
    print(f"waakhond: first start: created an admin API key, saved in {path}\n"
          f"          {key.token}", file=sys.stderr)


def _local_evidence_key(path: Path) -> str:
    """The embedded default's evidence key, made on first start and kept beside the database
    (owner-only). A deployment sets WAAKHOND_EVIDENCE_KEY from its secret store instead."""
    from cryptography.fernet import Fernet

    if not path.exists():
        path.write_text(Fernet.generate_key().decode() + "\n")
        os.chmod(path, 0o600)
    return path.read_text().strip()


def _ensure_console_admin(db: Any, path: Path) -> None:
    """On the very first start nobody can sign in to the console: make an ``admin`` account
    with a random password, kept in an owner-only file (change it with ``account password``)."""
    from waakhond.accounts import Accounts

    accounts = Accounts(db)
    if accounts.list():
        return
    password = secrets.token_urlsafe(12)
    accounts.create("admin", password, ["admin", "reviewer"])
    path.write_text(f"admin\n{password}\n")
    os.chmod(path, 0o600)
    print(f"waakhond: first start: console account 'admin' with password {password} "
          f"(saved in {path})", file=sys.stderr)


def _keys() -> Any:
    from waakhond.gateway.access import ApiKeys
    from waakhond.store import Database

    return ApiKeys(Database())


def _audit_log() -> Any:
    from waakhond.audit import AuditLog
    from waakhond.store import Database

    return AuditLog(Database())


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def _key_create(args: argparse.Namespace) -> int:
    try:
        key = _keys().create(args.name, args.scopes, args.per_minute)
    except ValueError as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _audit_log().append(_cli_actor(), "key.create", f"key:{key.key_id}",
                        {"name": key.name, "scopes": key.scopes})
    print(f"key {key.key_id} ({', '.join(key.scopes)}): {key.token}")
    print("the token is shown only now; keep it somewhere safe", file=sys.stderr)
    return EXIT_OK


def _key_list(_: argparse.Namespace) -> int:
    for key in _keys().list():
        state = "revoked" if key["revoked"] else "active"
        print(f"{key['id']:>4}  wk_{key['prefix']}_...  {state:8} {','.join(key['scopes']):30}"
              f" {key['requests_per_minute']}/min  {key['name']}")
    return EXIT_OK


def _key_revoke(args: argparse.Namespace) -> int:
    if not _keys().revoke(args.key_id):
        print(f"waakhond: no active key {args.key_id}", file=sys.stderr)
        return EXIT_USAGE
    _audit_log().append(_cli_actor(), "key.revoke", f"key:{args.key_id}", {})
    print(f"key {args.key_id} revoked")
    return EXIT_OK


def _audit_verify(_: argparse.Namespace) -> int:
    result = _audit_log().verify()
    if result.ok:
        print(f"audit log intact: {result.entries} entries, head {result.head}")
        return EXIT_OK
    print(f"audit log BROKEN: {result.problem}", file=sys.stderr)
    return EXIT_NO


def _audit_show(args: argparse.Namespace) -> int:
    for entry in _audit_log().entries(args.last):
        print(json.dumps(entry, ensure_ascii=False))
    return EXIT_OK


def _transparency_report(args: argparse.Namespace) -> int:
    from waakhond.store import Database
    from waakhond.transparency.report import PeriodError, report_for_days, to_csv

    try:
        rows = report_for_days(Database(), args.start, args.end)
    except PeriodError as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = to_csv(rows)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _evidence(args: argparse.Namespace) -> int:
    from waakhond.config import GatewaySettings
    from waakhond.gateway.records import DecisionLog
    from waakhond.store import Database

    log = DecisionLog(Database(), GatewaySettings.from_env().evidence_key or None)
    try:
        item = log.open_evidence(args.evidence_id, args.by, args.purpose)
    except (KeyError, ValueError) as exc:
        print(f"waakhond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.out.write_bytes(item.data)
    os.chmod(args.out, 0o600)
    print(f"evidence {args.evidence_id} ({item.mime_type}) written to {args.out}; this access "
          f"is logged")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from waakhond.config import GatewaySettings
    from waakhond.errors import WaakhondError
    from waakhond.gateway.setup import build_gateway

    gateway = build_gateway(GatewaySettings.from_env())
    marked_all = True
    for path in args.paths:
        try:
            report = gateway.verify(path.read_bytes())
        except (OSError, WaakhondError) as exc:
            print(f"waakhond: {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        marked_all = marked_all and (report["synthetic"] or report["ours"])
        print(json.dumps({"source": str(path), **report}) if args.json
              else _describe(path, report))
    return EXIT_OK if marked_all else EXIT_NO


def _describe(path: Path, report: dict[str, Any]) -> str:
    manifest, mark, record = report["manifest"], report["watermark"], report["record"]
    lines = [f"{path}: {'AI-GENERATED' if report['synthetic'] else 'no marks found'}"]
    if manifest.get("present"):
        lines.append(f"  C2PA manifest: {manifest.get('digital_source_type')} "
                     f"({manifest.get('validation_state')}"
                     f"{', trusted' if manifest.get('trusted') else ''})")
    else:
        lines.append("  C2PA manifest: none (it may have been stripped)")
    lines.append(f"  watermark: {'found' if mark.get('found') else 'not found'} "
                 f"(confidence {mark.get('confidence', 0):.2f})")
    if record:
        lines.append(f"  generation record: {record['record_id']} ({record['kind']}, "
                     f"{record['model']}, {record['created_at']})")
    return "\n".join(lines)
