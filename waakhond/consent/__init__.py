"""The consent registry."""
