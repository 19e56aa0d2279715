"""The control panel as a person uses it: Debian's Chromium against a real ``reminders serve``.

Signing in and out, the language, the sign-in throttle, the CSRF check on forms, the dashboard
that counts without a reload, and axe-core's accessibility check on every screen in both
languages. The harness is tests/browser.py; screenshots of every screen visited go to one
folder, printed at the end of the run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Final, cast

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, Playwright, expect

from reminders.panel.cookie import CSRF_FIELD
from tests.browser import (
    LANGUAGES,
    PASSWORD,
    Panel,
    Screens,
    choose_language,
    clear_of_midnight,
    launch,
    serious_violations,
    sign_in,
    sign_out,
)

pytestmark = pytest.mark.slow  # a real browser and a real server: not in the fast tier

# Every screen of the panel, checked by axe-core in each language, as an admin (who may see
# them all). Those in SIGNED_OUT are seen before signing in (signed in, /login sends the person
# on to the dashboard).
SCREENS: Final = [
    "/login",
    "/",
    "/notices",
    "/compose",
    "/contacts",
    "/groups",
    "/policies",
    "/upcoming",
    "/upcoming?view=month",
    "/sources",
    "/inbox",
    "/reports",
    "/admin",
]
SIGNED_OUT: Final = {"/login"}


def submit_login(page: Page, email: str, password: str) -> int:
    """Sign-in form filled and sent; the status the server answered with."""
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    with page.expect_response(
        lambda r: r.url.endswith("/login") and r.request.method == "POST"
    ) as answer:
        page.locator("main form button[type=submit]").click()
    return answer.value.status


def test_without_chromium_the_tests_fail_saying_so(tmp_path: Path) -> None:
    missing = tmp_path / "chromium"
    with pytest.raises(pytest.fail.Exception) as failed:
        launch(cast(Playwright, None), missing)
    assert str(failed.value) == (
        f"Debian's Chromium is missing ({missing}): run scripts/services, which installs it "
        "with apt-get install chromium"
    )


def test_sign_in_change_the_language_and_sign_out(
    page: Page, panel: Panel, screens: Screens
) -> None:
    page.goto("/")
    expect(page).to_have_url(f"{panel.base_url}/login")  # a stranger is sent to sign in
    assert submit_login(page, panel.email, PASSWORD) == 303
    expect(page).to_have_url(f"{panel.base_url}/")
    expect(page.locator("h1")).to_have_text("Today")
    expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    screens.shot(page, "signin-en-dashboard")

    choose_language(page, "bg")
    expect(page).to_have_url(f"{panel.base_url}/")
    expect(page.get_by_role("link", name="Табло")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Днес")
    screens.shot(page, "signin-bg-dashboard")

    sign_out(page)
    expect(page).to_have_url(f"{panel.base_url}/login")
    expect(page.locator("h1")).to_have_text("Вход")  # signed out, the language stays
    page.goto("/")
    expect(page).to_have_url(f"{panel.base_url}/login")  # and the session is over


def test_wrong_passwords_show_an_error_then_ask_to_wait(
    page: Page, panel: Panel, screens: Screens
) -> None:
    email = panel.guesser  # no other test signs in as them: the throttle counts per email
    page.goto("/login")
    error = page.locator("p.error[role=alert]")
    for _ in range(4):
        assert submit_login(page, email, "not the password") == 401
        expect(error).to_have_text("Wrong email or password.")
        expect(page.locator("#email")).to_have_value(email)  # kept for the next try
    screens.shot(page, "throttle-en-wrong-password")
    # The fifth in a row: the server holds further tries back, and says for how long.
    assert submit_login(page, email, "not the password either") == 429
    wait = re.compile(r"Too many failed attempts\. Try again in \d+ seconds?\.")
    expect(error).to_have_text(wait)
    screens.shot(page, "throttle-en-wait")
    assert serious_violations(Axe().run(page), "/login refused") == []


def test_the_dashboard_counts_without_a_reload(
    signed_in: Page, panel: Panel, screens: Screens
) -> None:
    page = signed_in
    clear_of_midnight()
    page.goto("/")
    sent = page.locator("#counter-sent")
    delivered = page.locator("#counter-delivered")
    expect(sent).to_have_text(re.compile(r"^\d+$"))
    sent_before, delivered_before = int(sent.inner_text()), int(delivered.inner_text())
    # The hourly table's "Sent" column, summed: the chart is fetched again when counts change.
    hourly_sent = """() => Array.from(document.querySelectorAll('#hours tbody tr'))
        .map(row => parseInt((row.children[1] || {}).textContent, 10) || 0)
        .reduce((a, b) => a + b, 0)"""
    hourly_before = page.evaluate(hourly_sent)
    page.evaluate("window.stillTheSamePage = true")  # gone if anything reloads the page

    notice_id = panel.send("0888 830 101")
    # The gateway took it: the stream (/live) brings the new count.
    expect(sent).to_have_text(str(sent_before + 1))
    assert panel.report(notice_id, "delivered") == "applied"
    expect(delivered).to_have_text(str(delivered_before + 1))
    expect(sent).to_have_text(str(sent_before + 1))  # delivered is still sent
    page.wait_for_function(f"({hourly_sent})() === {hourly_before + 1}", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True
    screens.shot(page, "live-en-dashboard")


def test_a_form_without_its_csrf_token_is_refused(
    signed_in: Page, panel: Panel, screens: Screens
) -> None:
    page = signed_in
    page.goto("/")
    removed = page.evaluate(
        """name => {
            const input = document.querySelector(`form[action="/language"] input[name="${name}"]`);
            input.remove();
            return true;
        }""",
        CSRF_FIELD,
    )
    assert removed
    page.locator("#lang").select_option("bg")
    with page.expect_response(lambda r: r.url.endswith("/language")) as answer:
        page.locator("form[action='/language'] button").click()
    assert answer.value.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    screens.shot(page, "csrf-en-refused")
    assert serious_violations(Axe().run(page), "403") == []
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # nothing changed


def test_every_screen_is_accessible_in_both_languages(
    page: Page, panel: Panel, screens: Screens
) -> None:
    """axe-core finds nothing serious or critical, and nothing runs off the side of a
    1,280 px window."""
    axe = Axe()
    found: list[str] = []

    def check(path: str, lang: str) -> None:
        answer = page.goto(path)
        assert answer is not None and answer.ok, f"{path}: {answer and answer.status}"
        expect(page.locator("html")).to_have_attribute("lang", lang)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            found.append(f"{lang} {path}: {overflow} px wider than the window")
        screens.shot(page, f"screen-{lang}-{path.strip('/') or 'dashboard'}")
        found.extend(serious_violations(axe.run(page), f"{lang} {path}"))

    for lang in LANGUAGES:
        page.goto("/login")
        choose_language(page, lang)
        for path in SCREENS:
            if path in SIGNED_OUT:
                check(path, lang)
        sign_in(page, panel.admin)
        for path in SCREENS:
            if path not in SIGNED_OUT:
                check(path, lang)
        sign_out(page)
    assert not found, "\n".join(found)


def test_a_group_from_pasted_numbers_then_a_message_to_it(
    signed_in: Page, panel: Panel, screens: Screens
) -> None:
    """The day's work of a receptionist: a group made by pasting numbers, a message to it
    whose cost changes as Cyrillic is typed, sent after the confirmation; the notices show."""
    page = signed_in
    name = f"Пациенти {int(time.time() * 1000) % 100000}"
    page.goto("/groups")
    page.locator("#name").fill(name)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("h1")).to_contain_text(name)
    page.locator("#numbers").fill("0888 840 001\n0888 840 002, +359888840003")
    page.get_by_role("button", name="Add the numbers").click()
    expect(page.locator("main")).to_contain_text("+359888840003")

    page.goto("/compose")
    page.get_by_label(re.compile(re.escape(name))).check()
    segments = page.locator("#preview [data-segments=written]")
    page.locator("#text").press_sequentially("Hello, your card is ready")
    expect(segments).to_have_text("1")
    expect(page.locator("#preview [data-encoding=written]")).to_have_text("GSM-7")
    # Cyrillic makes it UCS-2 (70 a segment): typing past 70 makes it two; the Latin column
    # (transliterated) stays at one.
    page.locator("#text").fill("")
    page.locator("#text").press_sequentially(
        "Здравейте! Картата ви е готова, заповядайте в офиса до петък, 18:00 ч. Поздрави!"
    )
    expect(page.locator("#preview [data-encoding=written]")).to_have_text("UCS-2")
    expect(segments).to_have_text("2")
    expect(page.locator("#preview [data-segments=latin]")).to_have_text("1")
    expect(page.locator("#preview")).to_contain_text("Recipients: 3")
    screens.shot(page, "compose-en-typed")

    page.get_by_role("button", name="Check and confirm").last.click()
    expect(page.locator(".total")).to_contain_text("3 recipients × 2 segments = 6 SMS")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page).to_have_url(re.compile(r"/notices\?message=\d+"))
    expect(page.locator("tbody tr")).to_have_count(3)
    expect(page.locator("tbody")).to_contain_text("+359888840001")
    screens.shot(page, "compose-en-sent")


def test_a_viewer_can_neither_open_compose_nor_post_to_it(page: Page, panel: Panel) -> None:
    viewer = panel.add_user(role="viewer")
    sign_in(page, viewer)
    expect(page.get_by_role("link", name="Compose")).to_have_count(0)  # not in the menu
    answer = page.goto("/compose")
    assert answer is not None and answer.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    # A post made by hand, with a good CSRF token from the dashboard, is refused just as well.
    page.goto("/")
    token = page.locator(f"form[action='/logout'] input[name={CSRF_FIELD}]").input_value()
    posted = page.request.post(
        "/compose/send",
        form={CSRF_FIELD: token, "numbers": "0888 840 010", "text": "Hi", "expect": "1:1"},
    )
    assert posted.status == 403
    with panel.api() as api:
        sent = api.get("/api/v1/notices", params={"limit": 500}).json()["items"]
    assert "+359888840010" not in {n["phone"] for n in sent}


def test_another_accounts_notice_is_not_found(page: Page, panel: Panel) -> None:
    theirs = panel.notice_elsewhere("+359888840020")
    sign_in(page, panel.email)
    if page.locator("html").get_attribute("lang") != "en":
        choose_language(page, "en")
    answer = page.goto(f"/notices/{theirs}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    mine = panel.send("0888 840 021")
    answer = page.goto(f"/notices/{mine}")
    assert answer is not None and answer.status == 200
