"""Jurisdiction-aware policy: YAML rules in, explained decisions out."""

from waakhond.policy.engine import Decision, Policy, load_policy, normalise_country

__all__ = ["Decision", "Policy", "load_policy", "normalise_country"]
