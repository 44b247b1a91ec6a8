"""DSA Transparency Database enums that policy rules may use (shared/docs/dsa.md).

Rules name the exact keys the Commission's API accepts; a typo fails when the policy loads,
not when a statement of reasons is rejected months later.
"""

from __future__ import annotations

GROUNDS = {
    "illegal": "DECISION_GROUND_ILLEGAL_CONTENT",
    "terms": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
}

CATEGORIES = frozenset(
    f"STATEMENT_CATEGORY_{name}"
    for name in (
        "ANIMAL_WELFARE", "CONSUMER_INFORMATION", "CYBER_VIOLENCE",
        "CYBER_VIOLENCE_AGAINST_WOMEN", "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
        "ILLEGAL_OR_HARMFUL_SPEECH", "INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS", "NOT_SPECIFIED_NOTICE",
        "OTHER_VIOLATION_TC", "PROTECTION_OF_MINORS", "RISK_FOR_PUBLIC_SECURITY",
        "SCAMS_AND_FRAUD", "SELF_HARM", "UNSAFE_AND_PROHIBITED_PRODUCTS", "VIOLENCE",
    )
)

KEYWORDS = frozenset(
    f"KEYWORD_{name}"
    for name in (
        "CHILD_SEXUAL_ABUSE_MATERIAL", "CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
        "NON_CONSENSUAL_IMAGE_SHARING", "NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN",
        "NON_CONSENSUAL_MATERIAL_DEEPFAKE", "NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN",
        "GROOMING_SEXUAL_ENTICEMENT_MINORS", "ADULT_SEXUAL_MATERIAL", "NUDITY",
        "AGE_SPECIFIC_RESTRICTIONS_MINORS", "AGE_SPECIFIC_RESTRICTIONS",
        "BIOMETRIC_DATA_BREACH", "IMPERSONATION_ACCOUNT_HIJACKING", "CYBER_HARASSMENT",
        "CYBER_HARASSMENT_AGAINST_WOMEN", "OTHER",
    )
)

# The restrictions a decision can take, in the database's four kinds (at least one is sent).
VISIBILITY = frozenset(
    f"DECISION_VISIBILITY_{name}"
    for name in (
        "CONTENT_REMOVED", "CONTENT_DISABLED", "CONTENT_DEMOTED", "CONTENT_AGE_RESTRICTED",
        "CONTENT_INTERACTION_RESTRICTED", "CONTENT_LABELLED", "OTHER",
    )
)
MONETARY = frozenset(
    f"DECISION_MONETARY_{name}" for name in ("SUSPENSION", "TERMINATION", "OTHER")
)
PROVISION = frozenset(
    f"DECISION_PROVISION_{name}"
    for name in ("PARTIAL_SUSPENSION", "TOTAL_SUSPENSION", "PARTIAL_TERMINATION",
                 "TOTAL_TERMINATION")
)
ACCOUNT = frozenset({"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"})

CONTENT_TYPES = frozenset(
    f"CONTENT_TYPE_{name}"
    for name in ("APP", "AUDIO", "IMAGE", "PRODUCT", "SYNTHETIC_MEDIA", "TEXT", "VIDEO", "OTHER")
)
SOURCE_TYPES = frozenset({
    "SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION",
    "SOURCE_VOLUNTARY",
})
AUTOMATED_DECISIONS = frozenset(
    f"AUTOMATED_DECISION_{name}" for name in ("FULLY", "PARTIALLY", "NOT_AUTOMATED")
)
# territorial_scope: the EU and EEA member states (Greece is GR, not EL).
TERRITORIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
})

# When the content is AI-made, the Transparency Database has a more precise keyword.
_DEEPFAKE_VARIANTS = {
    "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL": "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
    "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",
    "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN":
        "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN",
}


def synthetic_keywords(keywords: list[str]) -> list[str]:
    return list(dict.fromkeys(_DEEPFAKE_VARIANTS.get(k, k) for k in keywords))


def validate_dsa(category: str | None, keywords: list[str]) -> None:
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown DSA category {category!r}")
    unknown = sorted(set(keywords) - KEYWORDS)
    if unknown:
        raise ValueError(f"unknown DSA keywords {unknown}")
