"""Tables. Hash banks hold hashes and metadata only, never content."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives times back without their zone; every time stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def iso(moment: datetime | None) -> str | None:
    return aware(moment).isoformat() if moment else None


class Base(DeclarativeBase):
    # Times are UTC and stay marked as such in Postgres (SQLite keeps no zone; readers treat
    # its naive values as UTC).
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Bank(Base):
    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30))  # waakhond.hashing.banks.BankKind
    source: Mapped[str] = mapped_column(String(200), default="")
    match_distance: Mapped[int] = mapped_column(default=31)  # PDQ Hamming distance
    enabled_ratio: Mapped[float] = mapped_column(default=1.0)  # share of content it acts on
    # Where an exchange fetch stopped, so the next one resumes there (opaque to the bank).
    checkpoint: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    entries: Mapped[list[BankEntry]] = relationship(back_populates="bank",
                                                    cascade="all, delete-orphan")


class BankEntry(Base):
    __tablename__ = "bank_entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "value"),
        Index("ix_bank_entries_lookup", "signal_type", "value"),
        # Never reuse the id of a purged entry: running indexes may still hold the old one
        # until their next refresh.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="active")  # EntryStatus
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    # Set when a flood of matches paused the entry; a person releases it.
    quarantined_at: Mapped[datetime | None]
    confirmed: Mapped[int] = mapped_column(default=0)  # match feedback counts
    disputed: Mapped[int] = mapped_column(default=0)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    bank: Mapped[Bank] = relationship(back_populates="entries")


class BankChange(Base):
    """Every change to an entry, in order: running indexes poll it to stay current."""

    __tablename__ = "bank_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key and no hash value: a purged entry leaves only its id behind.
    entry_id: Mapped[int]
    signal_type: Mapped[str] = mapped_column(String(20))
    matchable: Mapped[bool]  # whether the entry matches after this change
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MatchFeedback(Base):
    """A reviewer's confirm or dispute of a match on an entry."""

    __tablename__ = "match_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"))
    feedback: Mapped[str] = mapped_column(String(20))  # exchange.Feedback
    by: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A client's key. Only its SHA-256 is stored: keys are long random tokens, so a fast hash
    is enough (a slow password hash protects guessable secrets, which these are not)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20), unique=True)  # shown in lists and logs
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    requests_per_minute: Mapped[int] = mapped_column(default=600)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class EndUser(Base):
    """A client's own user, by the id the client passes (``user`` / ``safety_identifier``).
    Strikes for blocked attempts lead to a warning, throttling and suspension (DSA Art. 23).
    One namespace per deployment: a platform's generation and moderation keys see the same
    users (a deployment serving several platforms prefixes the ids)."""

    __tablename__ = "end_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    tier: Mapped[str] = mapped_column(String(20), default="basic")  # access.Tier
    strikes: Mapped[int] = mapped_column(default=0)
    last_strike_at: Mapped[datetime | None]
    throttled_until: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    suspension_reason: Mapped[str] = mapped_column(Text, default="")


class DecisionRecord(Base):
    """Every gateway decision with its reasons. No content bytes. For decisions a person must
    look at (review, block_and_report) the signals and hashes are kept too: the reviewer sees
    every signal, and a removal blocks identical copies by their hashes."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_request", "request_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    request_id: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(20))  # gateway.Stage
    action: Mapped[str] = mapped_column(String(20))
    labels: Mapped[list[str]] = mapped_column(JSON)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    dsa: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    policy_version: Mapped[str] = mapped_column(String(40), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    api_key_id: Mapped[int | None]
    end_user: Mapped[str | None] = mapped_column(String(200))
    hashes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class GenerationRecord(Base):
    """An image the gateway let through, with the marks it carries, so ``verify`` can say
    where an image came from."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(String(40), unique=True)  # in the C2PA manifest
    mark_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # in the watermark
    request_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # generation or edit
    model: Mapped[str] = mapped_column(String(100), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    pdq: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[int | None]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Evidence(Base):
    """Content a person must look at (a review case) or the authorities may need (a reported
    one), encrypted with the evidence key; only when a key is configured."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_reference: Mapped[str] = mapped_column(String(40), index=True)
    mime_type: Mapped[str] = mapped_column(String(40))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One line of the append-only, hash-chained audit log (waakhond.audit)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # 1, 2, 3... no gaps
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class Notice(Base):
    """A report of illegal content: an Art. 16 notice, a TAKE IT DOWN request or an order
    from an authority. Stored, and committed, before its receipt is sent."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_queue", "status", "priority", "received_at"),
                      Index("ix_notices_notifier", "notifier_email"),
                      Index("ix_notices_flagger", "trusted_flagger"))

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    # Lets the notifier check the status without an account; only its hash is stored.
    status_secret_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(30))  # cases.NoticeKind
    category: Mapped[str] = mapped_column(String(80))  # STATEMENT_CATEGORY_*
    location: Mapped[str] = mapped_column(Text)  # URL or content id
    explanation: Mapped[str] = mapped_column(Text)
    notifier_name: Mapped[str | None] = mapped_column(String(200))
    notifier_email: Mapped[str | None] = mapped_column(String(320))
    good_faith: Mapped[bool]
    trusted_flagger: Mapped[str | None] = mapped_column(String(200))  # the flagger's name
    authority: Mapped[str | None] = mapped_column(String(200))  # for orders
    priority: Mapped[int]  # lower is sooner: child safety, then trusted flaggers, then others
    status: Mapped[str] = mapped_column(String(20), default="received")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]  # TAKE IT DOWN: 48 hours after receipt
    decided_at: Mapped[datetime | None]
    decision_reference: Mapped[str | None] = mapped_column(String(40))


class Case(Base):
    """Something a person must decide: a notice, or an automated review / report verdict."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_queue", "queue", "status", "priority", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # cases.queues.Source
    source_reference: Mapped[str] = mapped_column(String(40), index=True)
    queue: Mapped[str] = mapped_column(String(30))
    priority: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, assigned, decided
    assignee: Mapped[str | None] = mapped_column(String(200))
    assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]


class ModerationDecision(Base):
    """What a person decided on a case: a restriction (DSA Art. 17 terms) or no action.
    The decision facts are written for the affected user and hold no personal data, so the
    statement of reasons can be built from them as they are."""

    __tablename__ = "moderation_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # act_...
    case_reference: Mapped[str] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # cases.decisions.Outcome
    ground: Mapped[str | None] = mapped_column(String(40))  # DECISION_GROUND_*
    legal_ground: Mapped[str] = mapped_column(Text, default="")  # the law, for illegal content
    facts: Mapped[str] = mapped_column(Text, default="")  # why, for the affected user
    category: Mapped[str | None] = mapped_column(String(80))  # STATEMENT_CATEGORY_*
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[list[str]] = mapped_column(JSON, default=list)  # DECISION_VISIBILITY_*
    account: Mapped[str | None] = mapped_column(String(40))  # DECISION_ACCOUNT_*
    monetary: Mapped[str | None] = mapped_column(String(40))
    provision: Mapped[str | None] = mapped_column(String(60))
    territorial_scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    content_type: Mapped[list[str]] = mapped_column(JSON, default=list)  # CONTENT_TYPE_*
    content_location: Mapped[str] = mapped_column(Text, default="")  # URL or content id
    content_date: Mapped[datetime | None]
    end_user: Mapped[str | None] = mapped_column(String(200))  # whose content it was
    hashes: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # to remove identical copies
    automated_detection: Mapped[bool] = mapped_column(default=False)
    automated_decision: Mapped[str] = mapped_column(String(40))  # AUTOMATED_DECISION_*
    # A notice declined as manifestly unfounded counts against its notifier (Art. 23(2)).
    manifestly_unfounded: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Given once to the affected user (through the platform) to complain (Art. 20).
    complaint_secret_sha256: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    reversed_at: Mapped[datetime | None]  # set when a complaint overturned it


class StatementOfReasons(Base):
    """A statement for the Commission's Transparency Database, kept until it is stored there.
    The puid is unique here too, so it can never be sent twice for different statements."""

    __tablename__ = "statements_of_reasons"
    __table_args__ = (Index("ix_statements_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    puid: Mapped[str] = mapped_column(String(500), unique=True)
    decision_reference: Mapped[str] = mapped_column(String(40), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending/stored/rejected
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """An event for the platform (a restriction to apply, content to restore), kept until the
    platform acknowledges it. The event id is the idempotency key the platform deduplicates on."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhooks_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending/delivered/failing
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Complaint(Base):
    """A complaint against a decision (DSA Art. 20), from the affected user or the notifier.
    A person decides it; it becomes a case of its own."""

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # cmp_...
    decision_reference: Mapped[str] = mapped_column(String(40), index=True)
    complainant: Mapped[str] = mapped_column(String(20))  # affected_user or notifier
    explanation: Mapped[str] = mapped_column(Text)
    status_secret_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="received")  # received/decided
    outcome: Mapped[str | None] = mapped_column(String(20))  # upheld or reversed
    answer: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]


class CrimeReport(Base):
    """A report of a suspected crime (DSA Art. 18) or a CyberTipline-style CSAM report, built
    from a case. The package names evidence items; the content stays encrypted in evidence."""

    __tablename__ = "crime_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # rpt_...
    case_reference: Mapped[str] = mapped_column(String(40), index=True)
    destination: Mapped[str] = mapped_column(String(100))  # e.g. ncmec, europol, NL
    package: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="built")  # built/submitted/failed
    external_id: Mapped[str | None] = mapped_column(String(100))  # the receiver's report id
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]


class ConsentEnrolment(Base):
    """A person in the opt-out face registry: what they do not consent to. No photo and no
    name: the reference and a secret (only its hash) are how they manage it. Deleting it
    purges every embedding; the row stays only as a tombstone without personal data."""

    __tablename__ = "consent_enrolments"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # reg_...
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(30))  # consent.registry.Scope
    enrolled_by: Mapped[str] = mapped_column(String(30))  # self, representative, ...
    verification: Mapped[str] = mapped_column(String(20), default="unverified")
    status: Mapped[str] = mapped_column(String(20), default="active")  # active or deleted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    embeddings: Mapped[list[FaceEmbeddingRow]] = relationship(
        back_populates="enrolment", cascade="all, delete-orphan")


class FaceEmbeddingRow(Base):
    """One enrolled face as a 128-d float32 vector (512 bytes), nothing else."""

    __tablename__ = "face_embeddings"
    # Ids are never reused: running indexes may hold a deleted id until their next refresh.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(
        ForeignKey("consent_enrolments.id", ondelete="CASCADE"), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    enrolment: Mapped[ConsentEnrolment] = relationship(back_populates="embeddings")


class RegistryChange(Base):
    """Every change to the registry, in order: running indexes poll it to stay current. It
    names ids only, so nothing personal outlives a deletion."""

    __tablename__ = "registry_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffAccount(Base):
    """A person who works in the moderator console. Only an Argon2id hash of the password."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)  # accounts.Role values
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in console session; the browser holds the token, we keep its SHA-256."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class VictimSubmission(Base):
    """Hashes a person sent from the victim portal; never the images. The PIN is kept as an
    Argon2id hash; the hashes are listed so a withdrawal can take them out of the bank."""

    __tablename__ = "victim_submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # the case number
    pin_hash: Mapped[str] = mapped_column(String(200))
    hashes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active, withdrawn
    failed_pins: Mapped[int] = mapped_column(default=0)  # in a row: many lock the case number
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]
