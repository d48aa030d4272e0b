"""Consult-then-transfer in a real browser against the real server in emulator mode: the operator
answers, consults Ingrid Åkesson (the caller on hold), goes back to the caller, consults again and
connects. Screenshots of the consult go to tests/artifacts/."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from queue_app.sim import PhoneNumber

from .conftest import LiveServer, log_in

DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
SWITCHBOARD = "+46846500400"  # Växeln
INGRID_DESK = "+46846500411"  # Ingrid Åkesson, Vice VD: she answers


def shoot(page: Page, artifacts: Path, name: str, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def test_an_operator_consults_a_colleague_returns_then_connects_the_caller(
    live_server: LiveServer, browser, artifacts: Path
) -> None:
    url = live_server.url
    assert SWITCHBOARD in live_server.route_demo_numbers()
    with live_server.emulator.scheduler.lock:
        live_server.emulator.register_number(INGRID_DESK, PhoneNumber(mode="answer", answer_after=2))

    context = browser.new_context(viewport=DESKTOP, locale="sv-SE", timezone_id="Europe/Stockholm")
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        log_in(page, url, "bjorn@exempel.se")
        expect(page.locator("#phone-status")).to_have_attribute("data-phone", "ready", timeout=10_000)
        toggles = page.locator('[data-action="toggle-queue"]')
        for i in range(toggles.count()):
            toggles.nth(i).click()
            expect(toggles.nth(i)).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".state-bar.state-available")).to_be_visible()

        dialled = page.request.post(f"{url}/emulator/demo/dial", data={"to": SWITCHBOARD})
        assert dialled.status == 201, dialled.text()
        expect(page.locator("#offer-accept")).to_be_enabled(timeout=20_000)
        page.keyboard.press("a")
        expect(page.locator("#call-panel")).to_be_visible(timeout=10_000)

        # Consult Ingrid from the directory: the caller is put on hold while she is called.
        page.keyboard.press("/")
        page.keyboard.type("ingrid")
        hit = page.locator(".hit", has_text="Ingrid Åkesson")
        expect(hit).to_be_visible()
        hit.locator(".hit-consult").click()
        panel = page.locator("#transfer-panel.transfer-consulting")
        expect(panel).to_be_visible(timeout=20_000)
        expect(page.locator("#transfer-state")).to_contain_text("Du pratar med Ingrid Åkesson")
        expect(page.locator("#consult-connect")).to_be_enabled()
        expect(page.locator("#call-panel")).to_be_visible()
        shoot(page, artifacts, "console-desktop-consult", DESKTOP)
        shoot(page, artifacts, "console-phone-consult", PHONE)

        # Back to the caller with the keyboard (R); still on the call.
        page.keyboard.press("r")
        expect(page.locator("#transfer-state")).to_have_text("Tillbaka hos den som ringer.", timeout=10_000)
        expect(page.locator("#consult-actions")).to_be_hidden()
        expect(page.locator("#call-panel")).to_be_visible()

        # Consult again, then connect (C): the caller talks to Ingrid, Björn goes to wrap-up.
        page.locator("#transfer-dismiss").click()
        page.keyboard.press("/")
        page.keyboard.type("ingrid")
        expect(hit).to_be_visible()
        hit.locator(".hit-consult").click()
        expect(panel).to_be_visible(timeout=20_000)
        page.keyboard.press("c")
        expect(page.locator("#transfer-panel.transfer-connected")).to_be_visible(timeout=10_000)
        expect(page.locator("#transfer-state")).to_contain_text("kopplad till Ingrid Åkesson")
        expect(page.locator("#call-panel")).to_be_hidden(timeout=10_000)
        shoot(page, artifacts, "console-desktop-consult-connected", DESKTOP)
        assert page_errors == []
    finally:
        context.close()
