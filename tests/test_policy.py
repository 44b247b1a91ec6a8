"""The policy engine on signal fixtures: every label, every jurisdiction, every default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.signals import ADULT, CHILD, YOUNG_ADULT, make_signals
from waakhond.core import Action, Context
from waakhond.errors import PolicyError, UnknownCountry
from waakhond.policy import load_policy, normalise_country
from waakhond.policy.engine import RULES_DIR

UPLOAD, GENERATED, EDIT = Context.UPLOAD, Context.GENERATED, Context.EDIT_INPUT
ALL_COUNTRIES = [None, "NL", "FR", "DE", "ES", "IT", "GB", "US", "KR", "AU", "ID", "MY", "JP"]


def decide(context: Context = UPLOAD, country: str | None = None, **signals):
    return load_policy(country).decide(make_signals(**signals), context)


def rule_ids(decision) -> list[str]:
    return [reason.rule_id for reason in decision.reasons]


# --- nothing to see ---------------------------------------------------------------------


def test_benign_image_is_allowed_with_an_explanation():
    decision = decide(nsfw=0.02)
    assert decision.action is Action.ALLOW
    assert decision.labels == []
    assert rule_ids(decision) == ["default.allow"]
    assert decision.dsa is None


# --- minors -----------------------------------------------------------------------------


@pytest.mark.parametrize("country", ALL_COUNTRIES)
@pytest.mark.parametrize("context", list(Context))
def test_exposed_regions_with_a_possible_minor_are_blocked_and_reported(country, context):
    decision = decide(context, country, exposed=0.9, faces=[CHILD])
    assert decision.action is Action.BLOCK_AND_REPORT
    assert "SEXUAL_MINOR" in decision.labels
    assert decision.dsa.category == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert decision.dsa.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT"
    minor_reason = next(r for r in decision.reasons if r.rule_id == "minor.sexual_exposed")
    assert minor_reason.legal_source
    assert minor_reason.evidence["youngest_apparent_age"] == 12.0


def test_an_adult_inside_the_age_margin_counts_as_a_possible_minor():
    decision = decide(exposed=0.9, faces=[YOUNG_ADULT])
    assert decision.action is Action.BLOCK_AND_REPORT


def test_an_older_looking_face_with_a_real_chance_of_being_a_minor_counts():
    decision = decide(exposed=0.9, faces=[(31.0, 0.3)])
    assert decision.action is Action.BLOCK_AND_REPORT
    assert decision.reasons[0].evidence["max_p_minor"] == 0.3


def test_one_possible_minor_among_adults_is_enough():
    decision = decide(exposed=0.9, faces=[ADULT, ADULT, CHILD])
    assert decision.action is Action.BLOCK_AND_REPORT


def test_generated_csam_gets_the_deepfake_keyword():
    decision = decide(GENERATED, exposed=0.9, faces=[CHILD])
    assert decision.dsa.keywords == ("KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",)


def test_upload_declared_ai_by_c2pa_gets_the_deepfake_keyword():
    decision = decide(UPLOAD, exposed=0.9, faces=[CHILD], declared_ai=True)
    assert "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE" in decision.dsa.keywords


def test_a_very_high_whole_image_score_counts_as_explicit_without_regions():
    decision = decide(nsfw=0.95, faces=[CHILD])
    assert decision.action is Action.BLOCK_AND_REPORT


def test_suggestive_imagery_of_a_possible_minor_is_reviewed_on_upload():
    decision = decide(UPLOAD, covered=0.8, nsfw=0.4, faces=[CHILD])
    assert decision.action is Action.REVIEW
    assert set(decision.labels) == {"SUGGESTIVE", "POSSIBLE_MINOR"}


@pytest.mark.parametrize("context", [GENERATED, EDIT])
def test_suggestive_imagery_of_a_possible_minor_is_never_generated(context):
    decision = decide(context, covered=0.8, nsfw=0.4, faces=[CHILD])
    assert decision.action is Action.BLOCK


def test_an_unconfirmed_exposed_region_with_a_possible_minor_is_reviewed_not_reported():
    decision = decide(UPLOAD, exposed=0.5, nsfw=0.01, faces=[CHILD])
    assert decision.action is Action.REVIEW
    assert set(decision.labels) == {"NUDITY_UNCERTAIN", "POSSIBLE_MINOR"}


@pytest.mark.parametrize("context", [GENERATED, EDIT])
def test_an_unconfirmed_exposed_region_with_a_possible_minor_is_not_generated(context):
    assert decide(context, exposed=0.5, nsfw=0.01, faces=[CHILD]).action is Action.BLOCK


def test_an_exposed_region_confirmed_by_the_whole_image_score_counts():
    decision = decide(UPLOAD, exposed=0.5, nsfw=0.3, faces=[CHILD])
    assert decision.action is Action.BLOCK_AND_REPORT
    assert decision.reasons[0].evidence["region_score"] == 0.5


def test_an_unconfirmed_exposed_region_on_an_adult_is_not_restricted():
    assert decide(UPLOAD, exposed=0.5, nsfw=0.01, faces=[ADULT]).action is Action.ALLOW


def test_ordinary_clothing_seen_as_covered_region_is_not_suggestive_without_support():
    decision = decide(EDIT, covered=0.86, nsfw=0.09, faces=[YOUNG_ADULT])
    assert decision.action is Action.ALLOW
    assert decision.labels == []


# --- adults -----------------------------------------------------------------------------


def test_adult_nudity_upload_is_age_restricted_on_terms_not_law():
    decision = decide(UPLOAD, exposed=0.9, faces=[ADULT])
    assert decision.action is Action.AGE_RESTRICT
    assert decision.labels == ["ADULT_NUDITY"]
    assert decision.dsa.decision_ground == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert "KEYWORD_ADULT_SEXUAL_MATERIAL" in decision.dsa.keywords


def test_generated_adult_nudity_is_blocked():
    decision = decide(GENERATED, exposed=0.9, faces=[ADULT])
    assert decision.action is Action.BLOCK
    assert "ADULT_NUDITY" in decision.labels


def test_intimate_photo_of_a_real_person_is_not_edited():
    decision = decide(EDIT, exposed=0.9, faces=[ADULT])
    assert decision.action is Action.BLOCK
    assert "NCII_REAL_PERSON" in decision.labels
    assert decision.dsa.category == "STATEMENT_CATEGORY_CYBER_VIOLENCE"


def test_sexual_content_without_any_face_is_reviewed_because_age_is_unknown():
    decision = decide(UPLOAD, exposed=0.9, faces=[])
    assert decision.action is Action.REVIEW
    assert "AGE_UNVERIFIED" in decision.labels


def test_suggestive_adult_content_is_labelled_not_restricted():
    decision = decide(UPLOAD, covered=0.8, nsfw=0.4, faces=[ADULT])
    assert decision.action is Action.ALLOW
    assert decision.labels == ["SUGGESTIVE"]
    assert decision.dsa is None


def test_scores_below_thresholds_do_not_fire():
    decision = decide(UPLOAD, exposed=0.3, covered=0.3, nsfw=0.4, faces=[CHILD])
    assert decision.action is Action.ALLOW


# --- fail closed ------------------------------------------------------------------------


@pytest.mark.parametrize("context", list(Context))
def test_a_failed_detector_blocks(context):
    decision = decide(context, errors={"nudity.regions": "RuntimeError: boom"})
    assert decision.action is Action.BLOCK
    assert "SCREENING_INCOMPLETE" in decision.labels
    assert decision.reasons[0].evidence == {"failed_detectors": ["nudity.regions"]}


# --- jurisdictions ----------------------------------------------------------------------


@pytest.mark.parametrize("country", ["NL", "FR", "GB", "KR", "AU"])
def test_declared_ai_sexual_image_of_a_person_is_blocked_where_deepfakes_are_crimes(country):
    decision = decide(UPLOAD, country, exposed=0.9, faces=[ADULT], declared_ai=True)
    assert decision.action is Action.BLOCK
    assert decision.dsa.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert decision.dsa.keywords == ("KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",)
    reason = next(r for r in decision.reasons if r.rule_id.startswith("deepfake."))
    assert reason.legal_source


@pytest.mark.parametrize("country", [None, "DE", "ES", "US", "JP"])
def test_declared_ai_sexual_image_of_a_person_is_reviewed_elsewhere(country):
    decision = decide(UPLOAD, country, exposed=0.9, faces=[ADULT], declared_ai=True)
    assert decision.action is Action.REVIEW
    assert "POSSIBLE_DEEPFAKE" in decision.labels


@pytest.mark.parametrize("country", ["ID", "MY"])
def test_adult_nudity_is_blocked_where_pornography_is_prohibited(country):
    decision = decide(UPLOAD, country, exposed=0.9, faces=[ADULT])
    assert decision.action is Action.BLOCK
    assert decision.dsa.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT"


@pytest.mark.parametrize("country", ["GB", "KR"])
def test_generating_a_sexual_image_of_a_person_cites_the_creation_offence(country):
    decision = decide(GENERATED, country, exposed=0.9, faces=[ADULT])
    assert decision.action is Action.BLOCK
    assert decision.dsa.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert "deepfake.generated_sexual_person" in rule_ids(decision)


def test_eu_member_states_inherit_the_eu_layer():
    assert load_policy("IT").layers == ("base", "EU")
    assert load_policy("NL").layers == ("base", "EU", "NL")
    assert load_policy("JP").layers == ("base",)


def test_nl_edit_of_intimate_photo_cites_dutch_law_and_says_what_is_unverified():
    decision = decide(EDIT, "NL", exposed=0.9, faces=[ADULT])
    reason = next(r for r in decision.reasons if r.rule_id == "ncii.edit_of_intimate_image")
    assert "139h" in reason.legal_source
    assert "unverified" in reason.legal_source
    assert decision.dsa.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT"


@pytest.mark.parametrize("country", ALL_COUNTRIES)
def test_every_jurisdiction_loads_and_every_restriction_is_classified(country):
    policy = load_policy(country)
    assert policy.version
    for rule in policy.rules:
        if rule.action is not Action.ALLOW:
            assert rule.category and rule.ground, rule.id


# --- countries --------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "code"), [("nl", "NL"), (" fr ", "FR"), ("UK", "GB"),
                                             ("EL", "GR"), (None, None), ("", None)])
def test_country_codes_are_normalised(given, code):
    assert normalise_country(given) == code


@pytest.mark.parametrize("bad", ["XX", "Netherlands", "N", "123"])
def test_unknown_countries_are_refused_with_a_clear_error(bad):
    with pytest.raises(UnknownCountry, match="ISO 3166"):
        normalise_country(bad)


# --- the cascade ------------------------------------------------------------------------


def test_cascade_skips_faces_for_benign_uploads_and_always_runs_them_for_edits():
    policy = load_policy(None)
    assert not policy.needs("faces", make_signals(nsfw=0.05), UPLOAD)
    assert policy.needs("faces", make_signals(nsfw=0.05), EDIT)
    assert policy.needs("faces", make_signals(covered=0.3), UPLOAD)
    assert policy.needs("faces", make_signals(nsfw=0.35), GENERATED)


def test_cascade_runs_the_whole_image_score_once_any_body_part_is_seen():
    policy = load_policy(None)
    nothing = make_signals()
    assert not policy.needs("nsfw", nothing, UPLOAD)
    assert policy.needs("nsfw", make_signals(covered=0.21), UPLOAD)
    nothing.nudity = None  # the region detector failed: run everything else
    assert policy.needs("nsfw", nothing, GENERATED)
    assert policy.needs("hashes", nothing, UPLOAD)


# --- malformed policy files -------------------------------------------------------------


def _policy_dir(tmp_path: Path, extra: str, name: str = "XX") -> Path:
    (tmp_path / "base.yaml").write_text((RULES_DIR / "base.yaml").read_text())
    (tmp_path / f"{name}.yaml").write_text(extra)
    return tmp_path


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("rules: [{id: x, when: {all: [moon_phase]}, action: allow, text: t}]",
         "unknown facts"),
        ("rules: [{id: x, when: {all: [suggestive]}, action: block, text: t}]",
         "ground and a DSA category"),
        ("rules: [{id: x, when: {all: [suggestive]}, action: block, text: t, ground: terms, "
         "category: STATEMENT_CATEGORY_MADE_UP}]", "unknown DSA category"),
        ("rules: [{id: not.in.base, legal_source: law}]", "no earlier layer has"),
        ("thresholds: {cascade_nsfw: 0.99}", "cascade thresholds"),
        ("rules: [{id: x, when: {all: [suggestive]}, action: maybe, text: t}]", "action"),
    ],
)
def test_malformed_layers_fail_at_load_time_with_the_reason(tmp_path, layer, message):
    header = "name: NZ\ndescription: test\nextends: base\napplies_to: [NZ]\n"
    directory = _policy_dir(tmp_path, header + layer, name="NZ")
    with pytest.raises(PolicyError, match=message):
        load_policy("NZ", directory)


def test_a_layer_file_must_be_named_after_its_layer(tmp_path):
    directory = _policy_dir(tmp_path, "name: YY\ndescription: d\napplies_to: [NZ]\n")
    with pytest.raises(PolicyError, match="must match the file name"):
        load_policy("NZ", directory)


def test_evidence_does_not_report_a_score_that_was_never_computed():
    signals = make_signals()
    signals.nsfw = None  # the cascade skipped open-NSFW
    decision = load_policy(None).decide(signals, UPLOAD)
    assert "nsfw_score" not in decision.reasons[0].evidence
