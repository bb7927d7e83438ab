"""The live dashboard in a real browser: levers on the running world, keyboard, verdicts, lag.

The revocation scenario plays in simulated time behind the page. The test pulls "Disable key"
with the mouse and sees the storage turn revoked (the state panel and the swimlane chart), pulls
"Enable key" with the keyboard only (Tab to it, Enter) and sees the storage resume, pauses and
plays, speeds the run up to its end, and reads the final verdict list. Waits are bounded by
generous deadlines (a slow machine only makes them longer); nothing is asserted on wall time.
"""

from __future__ import annotations

import statistics
import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import screenshot

CLUSTER = "contosologs"
WAIT_S = 120  # the longest any one wait may take before the test gives up


def wait_until(what: str, check, timeout_s: float = WAIT_S, every_s: float = 0.1):
    """Polls `check` until it returns a true value (returned), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what} (last seen: {last!r})")


def attribute(driver, element_id: str, name: str) -> str:
    """An attribute read in one script call (the page redraws between two WebDriver calls)."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "return e ? (e.getAttribute(arguments[1]) || '') : '';",
        element_id,
        name,
    )


def storage_state(driver) -> str:
    return attribute(driver, f"storage-state-{CLUSTER}", "data-state")


def phase(driver) -> str:
    return attribute(driver, "phase", "data-phase")


def clock_ms(driver) -> int:
    return int(attribute(driver, "clock", "data-t-ms") or 0)


def text(driver, element_id: str) -> str:
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        element_id,
    )


def test_levers_revoke_and_resume_by_mouse_and_keyboard(demo_factory, browser):
    demo = demo_factory("revocation", 300)
    browser.get(demo.url)
    wait_until("the run to start", lambda: phase(browser) == "running" and clock_ms(browser) > 0)
    assert text(browser, "title").startswith("Revocation")
    wait_until("a healthy storage", lambda: storage_state(browser) == "healthy")

    # Every lever is a real, labelled button.
    levers = browser.find_elements(By.CSS_SELECTOR, "#levers button")
    labels = [b.text for b in levers]
    assert "Disable key" in labels and "Enable key" in labels and "Key Vault down" in labels
    assert all(b.tag_name == "button" and b.text for b in levers)

    before_ms = clock_ms(browser)
    assert before_ms < 3600_000, "the scenario's own disable (T+1h) must come after ours"
    browser.find_element(By.ID, "lever-disable-key").click()
    wait_until("the storage to turn revoked", lambda: storage_state(browser) == "revoked")
    wait_until(
        "a revoked span in the storage lane of the chart",
        lambda: browser.find_elements(By.CSS_SELECTOR, "#lanes svg .s-revoked"),
    )
    wait_until(
        "the lever's step in the narration",
        lambda: "From the dashboard: disable key." in text(browser, "feed"),
    )
    screenshot(browser, "dashboard-revoked")

    # Keyboard only: from the focused "Disable key", Tab reaches "Enable key"; Enter pulls it.
    browser.execute_script("document.getElementById('lever-disable-key').focus()")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "lever-enable-key"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_until(
        "the lever's answer",
        lambda: "Enable key: sent to the world" in text(browser, "lever-result"),
    )
    wait_until("the storage to resume", lambda: storage_state(browser) == "healthy")
    resumed_ms = clock_ms(browser)
    assert resumed_ms < 3600_000, "resumed before the scenario's own disable at T+1h"

    # Pause by keyboard (focus + Enter): the clock stands still; Play goes on.
    browser.execute_script("document.getElementById('play').focus()")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_until("the pause", lambda: phase(browser) == "paused")
    assert browser.find_element(By.ID, "play").get_attribute("aria-pressed") == "true"
    held = clock_ms(browser)
    time.sleep(1.0)
    assert clock_ms(browser) == held, "the simulated clock moved while paused"
    browser.find_element(By.ID, "play").click()
    wait_until("playing again", lambda: phase(browser) == "running" and clock_ms(browser) > held)

    # To the end at an hour a second, then the final verdicts.
    Select(browser.find_element(By.ID, "speed")).select_by_value("3600")
    wait_until("the speed", lambda: "3600" in text(browser, "scale"))
    wait_until("the end of the run", lambda: phase(browser) == "finished", timeout_s=300)
    wait_until(
        "the final verdicts",
        lambda: "final" in text(browser, "verdicts-note"),
    )
    verdicts = browser.execute_script(
        "const out = {};"
        "for (const r of document.querySelectorAll('#verdicts tbody tr'))"
        "  out[r.dataset.id] = r.dataset.outcome;"
        "return out;"
    )
    for expectation in [
        "revoked-within-1h",
        "ingest-dropped",
        "query-fails-while-revoked",
        "resumed",
        "query-succeeds-after",
        "nothing-lost-before-revocation",
    ]:
        assert expectation in verdicts, f"{expectation} missing from {verdicts}"
    assert all(v in ("held", "broken", "not-applicable") for v in verdicts.values()), verdicts
    assert any(k.startswith("invariant-") for k in verdicts), verdicts
    # The oracle saw the dashboard's revocation too: honoured, like the scenario's own.
    assert verdicts["revoked-within-1h"] == "held"
    assert verdicts["invariant-2"] == "held", verdicts
    # The verdicts on the page are the run's own, as the summary printed them.
    summary = "\n".join(demo.lines)
    assert "revoked-within-1h" in summary
    wait_until(
        "the finished chart",
        lambda: browser.find_elements(By.CSS_SELECTOR, "#lanes svg .s-healthy"),
    )
    path = screenshot(browser, "dashboard-revocation-finished")
    assert path.stat().st_size > 10_000


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def test_page_lag_behind_a_3600x_run_is_measured(demo_factory, browser):
    """Prints how far the page trails the world, in simulated seconds (not asserted on time).

    Two measures. The server's: the run's time minus the newest frame the slowest page has
    reported drawn (`pages_behind_ms` of GET /_cmksim/demo/clock, read in one answer). The
    browser's: the world's clock (GET /_cmksim/demo/clock), then the page's, then the world's
    again; the page was read between the two, so its true lag lies between `before - page` and
    `after - page` (a WebDriver call takes milliseconds, which are simulated minutes at 3600x:
    the upper bound is loose). Also printed: the speed the world reached (it waits for the
    page when the page is a minute behind) and what the page measured about its own frames.
    """
    demo = demo_factory("revocation", 3600)
    browser.get(demo.url)
    wait_until("the run to start", lambda: phase(browser) == "running" and clock_ms(browser) > 0)
    clock_lags_s, low_s, high_s, server_s = [], [], [], []
    wall_start, sim_start_ms = time.monotonic(), demo.clock()["sim_now_ms"]
    wall_end, sim_end_ms = wall_start, sim_start_ms
    last = None
    # Bounded: a 4h scenario at 3600x ends in about 4 s of wall time; at most 600 samples.
    for _ in range(600):
        before = demo.clock()
        page = browser.execute_script(
            "const c = document.getElementById('clock');"
            "return [Number(c.dataset.simMs || 0), Number(c.dataset.dataSimMs || 0)];"
        )
        after = demo.clock()
        if before["phase"] == "finished":
            break
        last = after
        wall_end, sim_end_ms = time.monotonic(), after["sim_now_ms"]
        if after.get("pages_behind_ms") is not None:
            server_s.append(after["pages_behind_ms"] / 1000)
        page_sim_ms, page_data_sim_ms = page
        mid_ms = (before["sim_now_ms"] + after["sim_now_ms"]) / 2
        clock_lags_s.append((mid_ms - page_sim_ms) / 1000)
        low_s.append((before["sim_now_ms"] - page_data_sim_ms) / 1000)
        high_s.append((after["sim_now_ms"] - page_data_sim_ms) / 1000)
        time.sleep(0.02)
    assert low_s and server_s, "no sample taken"
    assert sim_end_ms > sim_start_ms, "the run did not progress"
    assert last["pages"] >= 1, "the page was not following the run"
    mids = [(lo + hi) / 2 for lo, hi in zip(low_s, high_s)]
    speed = (sim_end_ms - sim_start_ms) / 1000 / max(wall_end - wall_start, 1e-3)
    page_stats = browser.execute_script("return window.cmksimStats;")
    assert page_stats["frames"] > 0 and page_stats["drawnReports"] > 0, page_stats
    print(
        f"\ndashboard behind a 3600x revocation run, in simulated seconds, {len(low_s)} samples:"
        f"\n  server (run - slowest page's drawn frame): median {statistics.median(server_s):.0f} s, "
        f"p90 {percentile(server_s, 0.9):.0f} s, max {max(server_s):.0f} s"
        f"\n  browser (newest frame in the page, between before/after reads): median "
        f"{statistics.median(mids):.0f} s (between {statistics.median(low_s):.0f} and "
        f"{statistics.median(high_s):.0f}), p90 {percentile(mids, 0.9):.0f} s, "
        f"max {max(low_s):.0f}..{max(high_s):.0f} s; the clock shown median "
        f"{statistics.median(clock_lags_s):.0f} s"
        f"\n  the world ran at {speed:.0f}x (3600x asked); it waited for the page "
        f"{last['holds']} times, {last['held_ms']} ms in all"
        f"\n  the page: {page_stats['frames']} frames, {page_stats['bytes'] / max(page_stats['frames'], 1):.0f} B "
        f"each, {page_stats['frameMsTotal'] / max(page_stats['frames'], 1):.2f} ms each "
        f"(max {page_stats['frameMsMax']:.1f} ms); chart swapped {page_stats['lanes']} times, "
        f"{page_stats['lanesBytes']} B, max {page_stats['lanesMsMax']:.1f} ms; "
        f"{page_stats['drawnReports']} drawn reports ({page_stats['drawnRefused']} refused)"
    )
