"""The web pages in a real browser (Debian's chromium via Playwright) against the real app on
a loopback port: a moderator logs in, takes a case, reveals the blurred preview and decides it;
someone sends a notice anonymously; a victim hashes images in the portal and a capture of
every request proves no image byte leaves the browser. Screenshots land in
test-artifacts/screenshots/.

Cases are seeded with harmless face photos (tests/web_cases.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, Request, expect
from sqlalchemy import select

from tests.browser import chromium, screenshot
from tests.gateway_server import serving
from tests.web_cases import FACES, PASSWORD, console_app, seed_case
from waakhond.audit import AuditLog
from waakhond.cases.notices import Notices
from waakhond.gateway.service import Gateway
from waakhond.hashing.banks import BankService
from waakhond.store.models import StatementOfReasons

pytestmark = pytest.mark.skipif(not FACES.exists(), reason="../shared/data/faces is missing")


@dataclass
class Site:
    url: str
    gateway: Gateway


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("WAAKHOND_DATA", str(tmp_path))
    app, gateway = console_app(tmp_path, {"rita": ["reviewer"], "chris": ["child_safety"]})
    with serving(app) as url:
        yield Site(url, gateway)


def log_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()


def test_a_moderator_logs_in_takes_a_case_reveals_it_and_decides(site: Site) -> None:
    seed_case(site.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg")
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, site.url, "rita")
        screenshot(page, "console-queues")
        page.keyboard.press("n")  # take the next case
        expect(page.get_by_role("heading", name=re.compile("^Case"))).to_be_visible()
        preview = page.locator(".preview img")
        expect(preview).to_have_class(re.compile("blurred"))
        page.wait_for_function("() => document.querySelector('.preview img').naturalWidth > 0")
        screenshot(page, "console-case-blurred")
        page.keyboard.press("v")  # a deliberate reveal
        expect(preview).not_to_have_class(re.compile("blurred"))
        expect(page.locator(".preview")).to_have_attribute("data-revealed", "grayscale")
        page.keyboard.press("2")  # restrict; removal is preselected
        page.get_by_label("Against the terms of service").check()
        page.get_by_label("What kind of illegal content is it?").select_option(
            "STATEMENT_CATEGORY_CYBER_VIOLENCE")
        page.get_by_label("Facts and circumstances").fill(
            "An intimate image of a real person published without consent.")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#done")).to_contain_text("act_")
        decided = page.locator("#done").inner_text()
        screenshot(page, "console-case-decided")
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator("svg[role=img]")).to_have_count(4)
        screenshot(page, "console-dashboard")
    reveals = AuditLog(site.gateway.decisions.db).entries()
    assert [entry["details"]["view"] for entry in reveals
            if entry["action"] == "preview.reveal"] == ["grayscale"]
    with site.gateway.decisions.db.session() as session:
        statements = session.scalars(select(StatementOfReasons)).all()
    assert len(statements) == 1 and statements[0].decision_reference in decided


def test_child_safety_content_is_shown_only_to_the_child_safety_role(site: Site) -> None:
    case_decision = seed_case(site.gateway.decisions, ["POSSIBLE_MINOR"], "img2.jpg")
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, site.url, "rita")
        page.get_by_role("button", name="Take the next case").click()
        expect(page.locator("#content-hidden")).to_be_visible()
        expect(page.locator(".preview")).to_have_count(0)
        case_url = page.url
        item = site.gateway.decisions.get(case_decision)["evidence_items"][0]  # type: ignore[index]
        denied = page.request.get(f"{case_url}/preview/{item}")
        assert denied.status == 403
        screenshot(page, "console-child-safety-hidden")
        other = browser.new_page()
        log_in(other, site.url, "chris")
        other.goto(case_url)
        expect(other.locator(".preview img")).to_have_class(re.compile("blurred"))


def send_anonymous_notice(page: Page, url: str, category: str, location: str,
                          why: str) -> None:
    page.goto(f"{url}/report")
    page.get_by_label("What kind of illegal content is it?").select_option(category)
    page.get_by_label(re.compile("^Where is it")).fill(location)
    page.get_by_label("Why is it illegal?").fill(why)
    page.get_by_label("Send this report anonymously").check()
    page.get_by_label(re.compile("good faith")).check()
    page.get_by_role("button", name="Send report").click()


def test_anyone_can_send_a_notice_anonymously_and_check_it(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page()
        send_anonymous_notice(page, site.url, "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
                              "https://images.example/p/123", "It sexualises a child.")
        reference = page.locator("#reference").inner_text()
        secret = page.locator("#secret").inner_text()
        screenshot(page, "notice-receipt")
        page.goto(f"{site.url}/status")
        page.get_by_label("Reference").fill(reference)
        page.get_by_label("Secret").fill(secret)
        page.get_by_role("button", name="Check").click()
        expect(page.locator("#notice-status")).to_have_text("Received, waiting for review")
    assert [notice["reference"] for notice in Notices(site.gateway.decisions.db).queue()] == [
        reference]


def test_an_anonymous_notice_of_anything_else_is_refused_with_a_reason(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page()
        send_anonymous_notice(page, site.url, "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
                              "https://shop.example/1", "A fake shop.")
        expect(page.get_by_role("alert")).to_contain_text("Only reports of child sexual abuse")
        expect(page.get_by_label("Why is it illegal?")).to_have_value("A fake shop.")


def test_the_victim_portal_sends_hashes_and_never_the_images(site: Site) -> None:
    photos = [FACES / "img1.jpg", FACES / "img3.jpg"]
    sent: list[Request] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda request: sent.append(request))
        page.goto(f"{site.url}/portal")
        page.locator("#images").set_input_files([str(path) for path in photos])
        expect(page.locator("#hash-table tbody tr")).to_have_count(2)
        expect(page.locator("#hash-progress")).to_contain_text("(2/2)")
        page.get_by_label(re.compile("These images show me")).check()
        page.get_by_role("button", name="Send fingerprints").click()
        expect(page.locator("#result")).to_be_visible()
        case_number = page.locator("#case-number").inner_text()
        pin = page.locator("#case-pin").inner_text()
        screenshot(page, "victim-portal-done")
        page.goto(f"{site.url}/portal/case")
        page.get_by_label("Case number").fill(case_number)
        page.get_by_label("PIN").fill(pin)
        page.get_by_role("button", name="Check").click()
        expect(page.locator("#case-status")).to_contain_text("Active")
    for request in sent:
        assert request.url.startswith(site.url), request.url  # nothing leaves for elsewhere
        body = request.post_data_buffer or b""
        assert len(body) < 20_000, (request.url, len(body))
        for photo in photos:
            data = photo.read_bytes()
            assert data[:64] not in body and data[-64:] not in body and data[2000:2064] not in body
    posted = [request.url.removeprefix(site.url) for request in sent if request.method == "POST"]
    assert posted == ["/v1/victims/submissions", "/portal/case"]
    banks = BankService(site.gateway.decisions.db)
    assert banks.info("ncii_victim").entries == {"active": 6}  # PDQ, MD5, SHA-256 of each


def test_pages_have_labels_a_language_and_a_skip_link(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page()
        for path in ("/", "/report", "/takedown", "/status", "/appeal", "/portal",
                     "/portal/case", "/opt-out", "/console/login"):
            page.goto(f"{site.url}{path}")
            assert page.locator("html").get_attribute("lang") == "en"
            unlabelled = page.evaluate("""() => [...document.querySelectorAll(
                'input:not([type=hidden]), select, textarea')].filter(field =>
                !field.labels.length && !field.getAttribute('aria-label')).map(f => f.id)""")
            assert unlabelled == [], (path, unlabelled)
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.className") == "skip", path
        screenshot(page, "console-login")


# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA (labels, contrast, names, structure,
# language), and its best practices.
AXE_RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                   "best-practice"]}}


def test_every_page_passes_axe_core_in_english_and_dutch(site: Site) -> None:
    seed_case(site.gateway.decisions, ["NCII_REAL_PERSON"], "img1.jpg")
    axe = Axe()
    found: dict[str, list[str]] = {}
    with chromium() as browser:
        for locale in ("en-GB", "nl-NL"):
            page = browser.new_page(locale=locale)
            for path in ("/", "/report", "/takedown", "/status", "/appeal", "/portal",
                         "/portal/case", "/opt-out", "/console/login"):
                page.goto(f"{site.url}{path}")
                found[f"{locale} {path}"] = _violations(axe, page)
        page = browser.new_page()
        log_in(page, site.url, "rita")
        found["queues"] = _violations(axe, page)
        page.keyboard.press("n")  # the seeded case
        expect(page.get_by_role("heading", name=re.compile("^Case"))).to_be_visible()
        found["case"] = _violations(axe, page)
        page.goto(f"{site.url}/console/dashboard")
        found["dashboard"] = _violations(axe, page)
    assert {page: rules for page, rules in found.items() if rules} == {}
    assert len(found) == 21


def _violations(axe: Axe, page: Page) -> list[str]:
    """Each broken rule with its first offending element, e.g. "color-contrast: .hint"; and
    what axe could not judge and left to a person, judged here."""
    results = axe.run(page, options=AXE_RULES).response
    found = [f"{rule['id']}: {rule['nodes'][0]['target']}" for rule in results["violations"]]
    for rule in results["incomplete"]:
        if rule["id"] != "color-contrast":
            found.append(f"{rule['id']} (axe could not tell): {rule['nodes'][0]['target']}")
            continue
        found += _low_contrast_chart_text(page, [node["target"][0] for node in rule["nodes"]])
    return found


def _low_contrast_chart_text(page: Page, selectors: list[str]) -> list[str]:
    """axe cannot find the background of text inside an SVG (it sees the chart as an image):
    each such text's fill against the chart's background must reach 4.5:1."""
    ratios = page.evaluate("""selectors => selectors.map(selector => {
        const text = document.querySelector(selector);
        const chart = text && text.closest('svg.chart');
        if (!chart) return [selector, 0];
        const luminance = colour => {
            const [r, g, b] = colour.match(/\\d+/g).slice(0, 3).map(c => {
                c = c / 255;
                return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const [a, b] = [getComputedStyle(text).fill, getComputedStyle(chart).backgroundColor]
            .map(luminance).sort((x, y) => y - x);
        return [selector, (a + 0.05) / (b + 0.05)];
    })""", selectors)
    return [f"color-contrast {ratio:.1f}:1: {selector}"
            for selector, ratio in ratios if ratio < 4.5]


def test_pages_speak_the_persons_language(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page(locale="de-DE")
        page.goto(f"{site.url}/report")
        assert page.locator("html").get_attribute("lang") == "de"
        page.get_by_role("link", name="Nederlands").click()
        assert page.locator("html").get_attribute("lang") == "nl"
        page.goto(f"{site.url}/portal")  # the choice is remembered
        assert page.locator("html").get_attribute("lang") == "nl"
        screenshot(page, "portal-nl")
