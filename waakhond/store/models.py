"""Tables. Hash banks hold hashes and metadata only, never content."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON}


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
