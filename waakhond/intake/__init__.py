"""Bytes in: type sniffing, limits, decoding and frames. Nothing past intake sees raw bytes."""

from waakhond.intake.image import DecodedImage, Frame, decode_image, sniff_type

__all__ = ["DecodedImage", "Frame", "decode_image", "sniff_type"]
