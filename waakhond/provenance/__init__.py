"""Provenance marking: signed C2PA manifests and an invisible watermark."""
