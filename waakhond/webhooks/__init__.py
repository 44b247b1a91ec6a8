"""Signed, retried, idempotent webhooks that carry actions to the platform (see delivery)."""

from waakhond.webhooks.delivery import (
    FAILING_AFTER,
    DeliveryStatus,
    Webhooks,
    enqueue,
    sign,
    verify_signature,
)

__all__ = ["FAILING_AFTER", "DeliveryStatus", "Webhooks", "enqueue", "sign", "verify_signature"]
