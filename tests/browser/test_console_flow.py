"""The operator console in a real browser against the real server in emulator mode (issue 7, Done means):
an operator logs in to two queues, a simulated caller rings, the operator answers, searches the
directory, transfers to a busy colleague, the call camps on and is recalled, and the operator sends a
message from a template. Screenshots of the console on a desktop and a phone-sized viewport go to
tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from queue_app.sim import PhoneNumber
from queue_app.sim.live import DEMO_CALLER

from .conftest import LiveServer, log_in

DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
SWITCHBOARD = "+46846500400"  # Växeln
AKE_DESK = "+46846500413"  # Åke Öberg, Ekonomichef: his phone is busy


def shoot(page: Page, artifacts: Path, name: str, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def test_an_operator_answers_transfers_to_a_busy_colleague_gets_the_call_back_and_sends_a_message(
    live_server: LiveServer, browser, artifacts: Path
) -> None:
    url = live_server.url
    assert SWITCHBOARD in live_server.route_demo_numbers()
    with live_server.emulator.scheduler.lock:
        live_server.emulator.register_number(AKE_DESK, PhoneNumber(mode="busy"))

    context = browser.new_context(viewport=DESKTOP, locale="sv-SE", timezone_id="Europe/Stockholm")
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        log_in(page, url, "anna@exempel.se")
        expect(page.locator("#phone-status")).to_have_attribute("data-phone", "ready", timeout=10_000)

        # Log in to both queues.
        toggles = page.locator('[data-action="toggle-queue"]')
        expect(toggles).to_have_count(2)
        for i in range(2):
            toggles.nth(i).click()
            expect(toggles.nth(i)).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".state-bar.state-available")).to_be_visible()

        # A caller rings the switchboard (the live demo's phone API, as the phone page does it).
        dialled = page.request.post(f"{url}/emulator/demo/dial", data={"to": SWITCHBOARD})
        assert dialled.status == 201, dialled.text()
        caller_sid = dialled.json()["sid"]
        offer = page.locator("#offer-panel")
        expect(offer).to_be_visible(timeout=20_000)
        expect(page.locator("#offer-number")).to_have_text(DEMO_CALLER)
        expect(page.locator("#offer-queue")).to_have_text("Växeln")
        expect(page.locator("#offer-accept")).to_be_enabled(timeout=10_000)
        shoot(page, artifacts, "console-phone-offer", PHONE)

        # Answer with the keyboard.
        page.keyboard.press("a")
        expect(page.locator("#call-panel")).to_be_visible(timeout=10_000)
        expect(page.locator("#call-number")).to_have_text(DEMO_CALLER)
        page.wait_for_function(
            # A synchronous request: wait_for_function takes a pending Promise for a truthy value.
            """(sid) => {
                const xhr = new XMLHttpRequest();
                xhr.open("GET", `/emulator/demo/calls/${sid}`, false);
                xhr.send();
                return JSON.parse(xhr.responseText).bridged;
            }""",
            arg=caller_sid,
            timeout=10_000,
        )

        # Search the directory ("ake" finds Åke) and transfer blind; his phone is busy.
        page.keyboard.press("/")
        page.keyboard.type("ake ekonomi")
        hit = page.locator(".hit", has_text="Åke Öberg")
        expect(hit).to_be_visible()
        shoot(page, artifacts, "console-desktop-call", DESKTOP)
        hit.locator(".hit-transfer").click()

        expect(page.locator("#transfer-panel.transfer-camped_on")).to_be_visible(timeout=20_000)
        expect(page.locator("#transfer-state")).to_contain_text("Åke Öberg")
        expect(page.locator("#call-panel")).to_be_hidden()
        shoot(page, artifacts, "console-desktop-camp-on", DESKTOP)
        shoot(page, artifacts, "console-phone-camp-on", PHONE)

        # Anna ends her wrap-up; when the camp-on time is over the caller comes back to her.
        ready = page.locator('[data-action="wrap-up-end"]')
        if ready.is_visible():
            ready.click()
        expect(page.locator("#transfer-panel.transfer-recalled")).to_be_visible(timeout=45_000)
        expect(offer).to_be_visible(timeout=15_000)
        expect(page.locator("#offer-recall")).to_contain_text("Åke Öberg")
        expect(page.locator("#offer-accept")).to_be_enabled(timeout=10_000)
        shoot(page, artifacts, "console-desktop-recalled", DESKTOP)
        page.click("#offer-accept")
        expect(page.locator("#call-panel")).to_be_visible(timeout=10_000)

        # A message to Åke about the call, from a template.
        page.click("#call-message")
        expect(page.locator("#msg-colleague")).to_have_value("Åke Öberg", timeout=10_000)
        page.select_option("#msg-template", label="Ring tillbaka")
        topic = page.locator('#msg-fields input[data-field="topic"]')
        expect(topic).to_be_visible(timeout=10_000)
        topic.fill("fakturan")
        expect(page.locator("#msg-body")).to_have_value(re.compile(r"Ärende: fakturan"), timeout=10_000)
        expect(page.locator("#msg-to")).to_have_value("+46701740608")
        page.click("#msg-send")
        sent = page.locator("#msg-sent li").first
        expect(sent).to_contain_text("Åke Öberg", timeout=15_000)
        expect(page.locator("#msg-error")).to_be_hidden()
        shoot(page, artifacts, "console-phone-message", PHONE)

        # Hang up.
        page.click("#call-hangup")
        expect(page.locator("#call-panel")).to_be_hidden(timeout=10_000)
        assert page_errors == []
    finally:
        context.close()
