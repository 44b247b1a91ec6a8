"""The audit log: append-only and hash-chained, so an edited or removed entry is detected."""

from waakhond.audit.log import AuditLog, Verification

__all__ = ["AuditLog", "Verification"]
