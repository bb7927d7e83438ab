"""The static report's time slider in a real browser: a cursor over the chart, the narration in
sync, operable by keyboard (the range input takes Home and Page Up like any slider)."""

from __future__ import annotations

import os
import subprocess

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from conftest import ARTIFACTS, REPO, screenshot


def test_report_slider_moves_the_cursor_and_the_narration(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "revocation-report.html"
    binary = os.environ.get("CMKSIM_BIN", str(REPO / "target" / "debug" / "cmksim"))
    run = subprocess.run(
        [binary, "run", "scenarios/revocation.toml", "--quiet", "--report", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    browser.get(report.as_uri())
    assert browser.execute_script("return document.getElementById('scrub').hidden") is False
    # At the end of the run, every narrated line is in the past.
    assert browser.execute_script("return document.querySelectorAll('tr.future').length") == 0

    browser.execute_script("document.getElementById('slider').focus()")
    ActionChains(browser).send_keys(Keys.HOME).perform()
    assert browser.execute_script("return document.getElementById('slider-at').textContent") == "T+00:00:00"
    for _ in range(3):
        ActionChains(browser).send_keys(Keys.PAGE_UP).perform()
    at = browser.execute_script("return +document.getElementById('slider').value")
    assert at > 0
    state = browser.execute_script(
        "const now = document.querySelector('tr.now');"
        "const line = document.querySelector('#chart svg line:last-of-type');"
        "return {future: document.querySelectorAll('tr.future').length,"
        "        now: now ? +now.dataset.tMs : null,"
        "        x: +line.getAttribute('x1'), x0: +document.getElementById('chart').dataset.x0};"
    )
    assert state["future"] > 0, "lines after the cursor are dimmed"
    assert state["now"] is not None and state["now"] <= at * 1000, "the current line is before it"
    assert state["x"] > state["x0"], "the cursor moved into the plot"
    screenshot(browser, "report-slider")
