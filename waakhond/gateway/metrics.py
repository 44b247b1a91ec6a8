"""Prometheus metrics: decisions by stage, action and label, and request latency.

Module-level collectors on the default registry, as prometheus_client expects: one set per
process, whatever number of apps a test creates.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from waakhond.core import Verdict

DECISIONS = Counter("waakhond_decisions_total", "Gateway decisions", ["stage", "action"])
LABELS = Counter("waakhond_decision_labels_total", "Labels on gateway decisions",
                 ["stage", "label"])
REQUEST_SECONDS = Histogram(
    "waakhond_request_seconds", "HTTP request latency", ["route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180))


# Set when /metrics is read, so an alerting rule fires before a deadline is missed
# (state due_soon) and when one was (state overdue).
CASES = Gauge("waakhond_cases", "Undecided cases by queue and state", ["queue", "state"])
CASE_STATES = ("open", "assigned", "overdue", "due_soon")


def count_decision(stage: str, verdict: Verdict) -> None:
    DECISIONS.labels(stage, verdict.action.value).inc()
    for label in verdict.labels:
        LABELS.labels(stage, label).inc()
