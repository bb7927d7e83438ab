"""Fixtures that put cmksim's live dashboard in front of a real browser.

`cmksim demo NAME --web --listen 127.0.0.1:0` plays a library scenario in simulated time and
serves the page; the fixture reads the URL it prints. The browser is Debian's headless Chromium
driven through Debian's chromedriver (no driver download: selenium is given both paths), with
every background connection of Chromium turned off, since this machine's network is closed.

Environment:
- CMKSIM_BIN: the binary (default: target/debug/cmksim of this repository).
- CMKSIM_CHROMIUM, CMKSIM_CHROMEDRIVER: the browser and its driver (default: Debian's paths).
- CMKSIM_WEB_START_TIMEOUT: seconds to wait for the dashboard's URL (default 60).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "target" / "web-artifacts"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2200",
]


class Demo:
    """One `cmksim demo --web` process and the dashboard URL it printed."""

    def __init__(self, name: str, speed: int):
        binary = os.environ.get("CMKSIM_BIN", str(REPO / "target" / "debug" / "cmksim"))
        self.lines: List[str] = []
        self.process = subprocess.Popen(
            [binary, "demo", name, "--web", "--listen", "127.0.0.1:0", "--speed", str(speed)],
            cwd=REPO,  # the library is ./scenarios
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for_url(float(os.environ.get("CMKSIM_WEB_START_TIMEOUT", "60")))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.match(r"dashboard: (http://\S+/)$", line)
                if match:
                    return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("no dashboard URL printed:\n" + "\n".join(self.lines[-40:]))

    def state(self, after: int = 1_000_000_000) -> dict:
        """The demo API's state (`after` past the end: no narration lines)."""
        with urllib.request.urlopen(f"{self.url}_cmksim/demo/state?after={after}", timeout=10) as r:
            return json.load(r)

    def clock(self) -> dict:
        """The run's simulated time (`sim_now_ms`) and phase, from the cheap clock endpoint."""
        with urllib.request.urlopen(f"{self.url}_cmksim/demo/clock", timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)


@pytest.fixture
def demo_factory():
    started: List[Demo] = []

    def start(name: str, speed: int) -> Demo:
        demo = Demo(name, speed)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop()


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = os.environ.get("CMKSIM_CHROMIUM", "/usr/bin/chromium")
    profile = tempfile.TemporaryDirectory(prefix="cmksim-chromium-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile.name}"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CMKSIM_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver: Optional[webdriver.Chrome] = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def screenshot(driver, name: str) -> Path:
    """Writes the page as target/web-artifacts/NAME.png (a test artefact); returns the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
