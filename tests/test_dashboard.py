"""The moderator console's dashboard: counts per UTC day (by action, by label, by outcome),
queues and block rates per jurisdiction, on SQLite and PostgreSQL; and the SVG charts and
tables that show them (well-formed, escaped, accessible, no inline styles or scripts)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from markupsafe import Markup

from waakhond.store import Database
from waakhond.store.models import Case, DecisionRecord, ModerationDecision
from waakhond.web.charts import (
    NO_DATA,
    OTHER_COLOUR,
    PALETTE,
    data_table,
    horizontal_bars,
    stacked_bars,
)
from waakhond.web.dashboard import BlockRate, dashboard, period_days

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
_numbers = itertools.count()


def database(url: str) -> Database:
    """On PostgreSQL the session's time zone is far from UTC, so a day computed in the
    session's zone instead of UTC would land on the wrong day."""
    if url.startswith("postgresql"):
        url += "?options=-c%20TimeZone%3DPacific%2FAuckland"
    return Database(url)


def decision(at: datetime, action: str = "allow", labels: tuple[str, ...] = (),
             country: str | None = "NL") -> DecisionRecord:
    number = next(_numbers)
    return DecisionRecord(reference=f"dec_{number}", request_id=f"req_{number}",
                          stage="image", action=action, labels=list(labels), reasons=[],
                          country=country, at=at)


def person(at: datetime, outcome: str) -> ModerationDecision:
    number = next(_numbers)
    return ModerationDecision(reference=f"act_{number}", case_reference=f"case_{number}",
                              outcome=outcome, automated_decision="AUTOMATED_DECISION_NOT",
                              decided_by="ann", decided_at=at)


def case(queue: str, due_at: datetime, status: str = "open") -> Case:
    number = next(_numbers)
    return Case(reference=f"case_{number}", source="notice", source_reference=f"ntc_{number}",
                queue=queue, priority=3, status=status, created_at=NOW, due_at=due_at)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def test_the_period_is_the_last_days_in_utc_oldest_first(tmp_path):
    assert period_days(NOW, 3) == [TODAY - timedelta(days=2), YESTERDAY, TODAY]
    evening_in_new_york = datetime(2025, 3, 14, 20, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert period_days(evening_in_new_york, 1) == [TODAY + timedelta(days=1)]
    with pytest.raises(ValueError, match="days"):
        dashboard(Database(f"sqlite:///{tmp_path / 'w.db'}"), days=0, now=NOW)


def test_gateway_decisions_are_counted_per_utc_day_by_action_and_by_label(db_url):
    db = database(db_url)
    first = TODAY - timedelta(days=13)
    with db.session() as session:
        session.add_all([
            decision(at(YESTERDAY, 23, 30), "block", ("ADULT_NUDITY", "NCII_REAL_PERSON")),
            decision(at(TODAY, 0, 10), "block", ("ADULT_NUDITY",)),
            decision(at(TODAY, 11), "allow"),
            decision(at(TODAY, 11, 5), "review", ("NUDITY_UNCERTAIN",)),
            decision(at(first, 0), "block_and_report", ("SEXUAL_MINOR",)),  # first instant
            decision(at(first, 0) - timedelta(seconds=1), "block", ("OLD",)),  # before it
            decision(at(TODAY + timedelta(days=1), 0, 1), "block", ("FUTURE",)),  # after it
        ])
    board = dashboard(db, days=14, now=NOW)
    assert board.days[0] == first and board.days[-1] == TODAY and len(board.days) == 14
    assert board.day_labels[-1] == "2025-03-14"
    actions = board.decisions_by_action
    assert list(actions) == ["allow", "age_restrict", "review", "block", "block_and_report"]
    assert actions["block"][-2:] == [1, 1] and sum(actions["block"]) == 2
    assert actions["allow"][-1] == 1 and actions["review"][-1] == 1
    assert actions["block_and_report"][0] == 1 and sum(actions["block_and_report"]) == 1
    assert sum(actions["age_restrict"]) == 0
    labels = board.decisions_by_label
    assert next(iter(labels)) == "ADULT_NUDITY"  # the most frequent first
    assert labels["ADULT_NUDITY"][-2:] == [1, 1]
    assert labels["NCII_REAL_PERSON"][-2:] == [1, 0]
    assert labels["NUDITY_UNCERTAIN"][-1] == 1 and labels["SEXUAL_MINOR"][0] == 1
    assert "OLD" not in labels and "FUTURE" not in labels
    assert sum(map(sum, labels.values())) == 5  # the decision without labels: nowhere
    rows = board.per_day_rows(actions)
    assert board.per_day_header(actions)[0] == "Day" and rows[-1] == ["2025-03-14", 1, 0, 1,
                                                                        1, 0, 3]


def test_peoples_decisions_are_counted_per_day_by_outcome(db_url):
    db = database(db_url)
    with db.session() as session:
        session.add_all([person(at(TODAY, 1), "restrict"), person(at(TODAY, 2), "restrict"),
                         person(at(YESTERDAY, 23, 59), "no_action"),
                         person(at(TODAY - timedelta(days=7), 9), "restrict")])
    outcomes = dashboard(db, days=7, now=NOW).moderation_by_outcome
    assert outcomes == {"restrict": [0, 0, 0, 0, 0, 0, 2], "no_action": [0, 0, 0, 0, 0, 1, 0]}


def test_block_rates_per_country_for_the_period_most_decisions_first(db_url):
    db = database(db_url)
    with db.session() as session:
        session.add_all([
            decision(at(TODAY, 1), "block", country="DE"),
            decision(at(TODAY, 2), "block_and_report", country="DE"),
            decision(at(YESTERDAY, 3), "allow", country="DE"),
            decision(at(TODAY, 4), "review", country="DE"),
            decision(at(TODAY, 5), "allow", country="NL"),
            decision(at(TODAY, 5), "block", country="NL"),
            decision(at(TODAY, 6), "block", country=None),
            decision(at(TODAY - timedelta(days=30), 6), "block", country="FR"),  # too old
        ])
    board = dashboard(db, now=NOW)
    assert board.block_rates == [BlockRate("DE", 4, 2, 0.5), BlockRate("NL", 2, 1, 0.5),
                                 BlockRate("unknown", 1, 1, 1.0)]
    assert board.block_rate_rows[0] == ["DE", 4, 2, "50.0%"]


def test_the_queues_are_the_case_overview(db_url):
    db = database(db_url)
    with db.session() as session:
        session.add_all([case("general", NOW - timedelta(hours=1)),
                         case("general", NOW + timedelta(minutes=5), status="assigned"),
                         case("child_safety", NOW + timedelta(hours=2)),
                         case("general", NOW - timedelta(hours=5), status="decided")])
    queues = {queue["queue"]: queue for queue in dashboard(db, now=NOW).queues}
    general = {key: queues["general"][key] for key in ("open", "assigned", "overdue", "due_soon")}
    assert general == {"open": 1, "assigned": 1, "overdue": 1, "due_soon": 1}
    assert queues["child_safety"]["open"] == 1 and queues["child_safety"]["overdue"] == 0


def test_an_empty_database_gives_zeros_and_no_labels(db_url):
    board = dashboard(database(db_url), days=3, now=NOW)
    assert board.decisions_by_action["block"] == [0, 0, 0]
    assert board.decisions_by_label == {} and board.block_rates == []
    assert "No data" in stacked_bars("Labels", board.day_labels, board.decisions_by_label,
                                     description="none")


# Charts


def parse(svg: Markup) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == desc.get("id")
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def no_inline_style_or_script(markup: Markup) -> None:
    for element in ET.fromstring(str(markup)).iter():
        assert "style" not in element.attrib and not element.tag.endswith("script")
        assert not any(name.startswith("on") for name in element.attrib)


SERIES = {"allow": [3, 0, 1], "block": [1, 2, 0], "review": [0, 0, 4]}


def test_a_stacked_bar_chart_is_well_formed_with_a_legend_of_every_series():
    svg = stacked_bars("Decisions by action", ["2025-03-12", "2025-03-13", "2025-03-14"],
                       SERIES, description="Automated decisions per day")
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "Decisions by action"
    assert root.find(f"{SVG}desc").text == "Automated decisions per day"
    legend = root.find(f"{SVG}g[@class='legend']")
    assert [t.text for t in legend.iter(f"{SVG}text")] == list(SERIES)
    bars = root.find(f"{SVG}g[@class='bars']").findall(f"{SVG}rect")
    assert len(bars) == 5  # one per non-zero count
    assert {bar.get("fill") for bar in bars} == set(PALETTE[:3])
    assert "2025-03-13, block: 2" in [bar.find(f"{SVG}title").text for bar in bars]
    ticks = texts(root.find(f"{SVG}g[@class='y-axis']"))
    assert ticks[0] == "0" and int(ticks[-1]) >= 4  # the tallest bar: 4
    no_inline_style_or_script(svg)


def test_hostile_labels_are_escaped():
    hostile = '<script>alert("x")</script>'
    svg = stacked_bars(hostile, [hostile], {hostile: [1]}, description=hostile)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = parse(svg)
    assert any(text.startswith("<script>alert") for text in texts(root))  # escaped once
    assert root.find(f"{SVG}title").text == hostile
    no_inline_style_or_script(svg)
    bars = horizontal_bars("Rates", [(hostile, 0.5)], description=hostile)
    assert "<script>" not in bars
    no_inline_style_or_script(bars)
    table = data_table(hostile, [hostile], [[hostile, 1]])
    assert "<script>" not in table
    assert ET.fromstring(str(table)).find("caption").text == hostile


def test_charts_without_data_say_so():
    for svg in (stacked_bars("Empty", [], {}, description="d"),
                stacked_bars("Zeros", ["a", "b"], {"x": [0, 0]}, description="d"),
                horizontal_bars("Empty", [], description="d")):
        assert NO_DATA in texts(parse(svg))
    table = ET.fromstring(str(data_table("Empty", ["Day", "Count"], [])))
    assert table.find("tbody/tr/td").text == NO_DATA


def test_more_series_than_colours_are_folded_into_one():
    series = {f"label {n}": [n + 1] for n in range(len(PALETTE) + 3)}
    root = parse(stacked_bars("Labels", ["2025-03-14"], series, description="d"))
    legend = texts(root.find(f"{SVG}g[@class='legend']"))
    assert legend[:-1] == list(series)[:len(PALETTE) - 1] and legend[-1] == "4 more"
    fills = [rect.get("fill") for rect in root.find(f"{SVG}g[@class='bars']")]
    assert fills[-1] == OTHER_COLOUR and len(set(fills)) == len(PALETTE)


def test_series_must_match_the_labels():
    with pytest.raises(ValueError, match="values"):
        stacked_bars("t", ["a", "b"], {"x": [1]}, description="d")
    with pytest.raises(ValueError, match="negative"):
        stacked_bars("t", ["a"], {"x": [-1]}, description="d")


def test_horizontal_bars_show_each_row_and_its_formatted_value():
    svg = horizontal_bars("Block rate", [("DE", 0.5), ("NL", 0.25), ("unknown", 1.0)],
                          description="Blocked share of decisions per jurisdiction")
    root = parse(svg)
    shown = texts(root)
    for expected in ("DE", "NL", "unknown", "50%", "25%", "100%"):
        assert expected in shown
    widths = [float(rect.get("width")) for bar in root.iter(f"{SVG}g")
              if bar.get("class") == "bar" for rect in bar.findall(f"{SVG}rect")]
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.2)  # drawn to 0.1 px
    assert widths[2] == pytest.approx(2 * widths[0], abs=0.2)
    no_inline_style_or_script(svg)


def test_a_data_table_has_a_caption_and_scoped_headers():
    table = ET.fromstring(str(data_table("Decisions by action", ["Day", "allow", "rate"],
                                         [["2025-03-14", 3, 0.25]])))
    assert table.find("caption").text == "Decisions by action"
    assert [th.get("scope") for th in table.iter("th")] == ["col", "col", "col", "row"]
    assert [td.text for td in table.iter("td")] == ["3", "0.25"]


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("colour", [*PALETTE, OTHER_COLOUR])
def test_every_colour_has_3_to_1_contrast_on_white(colour):
    assert 1.05 / (_luminance(colour) + 0.05) >= 3
