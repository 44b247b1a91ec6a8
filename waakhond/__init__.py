"""waakhond: a safety gateway against AI-generated sexual deepfakes and CSAM.

    from waakhond import Screener
    verdict = Screener().check_image(image_bytes, context="generated", country="FR")
"""

from waakhond.core import Action, Context, Reason, Verdict
from waakhond.errors import InputError, UnknownCountry, WaakhondError
from waakhond.screening import Screener

__all__ = [
    "Action",
    "Context",
    "InputError",
    "Reason",
    "Screener",
    "UnknownCountry",
    "Verdict",
    "WaakhondError",
]
__version__ = "0.1.0"
