"""The victim portal: people send hashes of their intimate images (never the images) to have
matching uploads and generated images blocked, and can check or withdraw them later."""

from waakhond.victims.portal import (
    SubmittedHash,
    VictimLocked,
    VictimNotFound,
    VictimPortal,
    VictimPortalError,
    VictimReceipt,
)

__all__ = ["SubmittedHash", "VictimLocked", "VictimNotFound", "VictimPortal",
           "VictimPortalError", "VictimReceipt"]
