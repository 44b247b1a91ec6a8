"""Statements of reasons for the Commission's DSA Transparency Database (Art. 17, 24(5)): built
from a person's decision, kept in an outbox and sent in batches."""
