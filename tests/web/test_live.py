"""Live mode of the dashboard in a real browser: `cmksim serve all --rest-listen` on 127.0.0.1:0
ports (started by the SDK suite's own fixture code, tests/sdk/conftest.py, at its 60x time
scale and profile overrides), a customer-managed-key world built through the official Azure SDKs
(vault and key, cluster, the cluster's access policy, the key on the cluster), then the page at
`/` of the door.

The test checks: before signing in the page asks for the one-time link and has no token field;
the link `serve` printed signs the browser in (a session cookie) and is spent; the swimlanes, the
feed, the clock and the invariants come from the live event logs; "Disable key", pressed with
the keyboard only (Tab from the top of the page, Enter), turns the storage lane revoked (the
storage's next poll, within the profile's 60 s at most, one second of wall time at 60x) and the
feed records the lever; "Enable key" by mouse resumes it (resuming); the lever is in
`/_cmksim/events` beside the services' own events. Screenshots are written to
target/web-artifacts/. Waits are bounded; nothing is asserted on wall time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
import time
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import CHROMIUM_FLAGS, REPO, screenshot
from test_dashboard import attribute, text, wait_until

# The SDK suite's fixture code, loaded under its own name (both directories have a conftest).
_spec = importlib.util.spec_from_file_location("sdk_conftest", REPO / "tests" / "sdk" / "conftest.py")
sdk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sdk)

WAIT_S = 60
TABS_MAX = 60  # Tab presses from the top of the page to the lever, at most


def dashboard_link(server) -> str:
    deadline = time.monotonic() + WAIT_S
    pattern = re.compile(r"^dashboard: (https://\S+) \(one-time", re.M)
    while time.monotonic() < deadline:
        found = pattern.search(server.stdout.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError("serve printed no dashboard link:\n" + server.stdout.read_text())


@pytest.fixture(scope="module")
def live():
    """The server, its credentials, and a CMK world built through the SDKs."""
    from azure.keyvault.keys import KeyClient
    from azure.mgmt.keyvault import KeyVaultManagementClient
    from azure.mgmt.keyvault import models as kvm
    from azure.mgmt.loganalytics import LogAnalyticsManagementClient
    from azure.mgmt.loganalytics import models as lam

    tmp = Path(tempfile.mkdtemp(prefix="cmksim-web-live-"))
    server = sdk._start_server(tmp)
    creds = server.credentials
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", creds["caFile"])
        mp.setenv("HTTPS_PROXY", creds["httpsProxy"])
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        for name in ("https_proxy", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                     "all_proxy"):
            mp.delenv(name, raising=False)
        try:
            credential = sdk.make_credential(creds["tenantId"], creds["clientId"],
                                             creds["clientSecret"], creds["authorityHost"],
                                             creds["caFile"])
            kv_mgmt = KeyVaultManagementClient(credential, creds["subscriptionId"],
                                               base_url=server.rest_url)
            la_mgmt = LogAnalyticsManagementClient(credential, creds["subscriptionId"],
                                                   base_url=server.rest_url)
            vault_name = sdk.unique("webkv")
            key_name = sdk.unique("web-cmk")
            cluster_name = sdk.unique("webcluster").replace("-", "")
            sdk.create_vault(kv_mgmt, creds, vault_name)
            key = KeyClient(sdk.vault_url(vault_name), credential).create_rsa_key(
                key_name, size=2048, hardware_protected=True,
                key_operations=["wrapKey", "unwrapKey"])
            cluster = la_mgmt.clusters.begin_create_or_update(
                sdk.RESOURCE_GROUP, cluster_name,
                lam.Cluster(location=sdk.LOCATION,
                            identity=lam.ManagedServiceIdentity(type="SystemAssigned"),
                            sku=lam.ClusterSku(name="CapacityReservation", capacity=1000)),
            ).result(timeout=WAIT_S)
            kv_mgmt.vaults.update_access_policy(
                sdk.RESOURCE_GROUP, vault_name, "add",
                kvm.VaultAccessPolicyParameters(properties=kvm.VaultAccessPolicyProperties(
                    access_policies=[kvm.AccessPolicyEntry(
                        tenant_id=cluster.identity.tenant_id or creds["tenantId"],
                        object_id=cluster.identity.principal_id,
                        permissions=kvm.Permissions(
                            keys_property=["get", "wrapKey", "unwrapKey"]))])))
            la_mgmt.clusters.begin_update(
                sdk.RESOURCE_GROUP, cluster_name,
                lam.ClusterPatch(key_vault_properties=lam.KeyVaultProperties(
                    key_vault_uri=sdk.vault_url(vault_name), key_name=key_name,
                    key_version=key.properties.version)),
            ).result(timeout=WAIT_S)
            yield {"server": server, "creds": creds, "cluster": cluster_name,
                   "link": dashboard_link(server), "credential": credential}
        finally:
            code = sdk._stop(server.proc)
            assert code == 0, f"serve did not exit 0 after SIGTERM:\n{server.stderr_tail()}"


@pytest.fixture
def live_browser():
    """Headless Chromium that trusts the door's self-signed certificate (this test only)."""
    options = Options()
    options.binary_location = os.environ.get("CMKSIM_CHROMIUM", "/usr/bin/chromium")
    profile = tempfile.TemporaryDirectory(prefix="cmksim-chromium-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile.name}",
                                  "--ignore-certificate-errors", "--no-proxy-server"]:
        options.add_argument(flag)
    service = Service(executable_path=os.environ.get("CMKSIM_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def test_live_mode_at_the_door_root(live, live_browser):
    browser = live_browser
    server, cluster = live["server"], live["cluster"]
    # Not signed in: the page says how, and offers no field to paste a token into.
    browser.get(server.rest_url + "/")
    wait_until("the sign-in note", lambda: browser.find_element(By.ID, "live-login").is_displayed(),
               timeout_s=WAIT_S)
    assert not browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
    unauthorised = requests.get(server.rest_url + "/_cmksim/dashboard/stream",
                                verify=live["creds"]["caFile"], timeout=10)
    assert unauthorised.status_code == 401, unauthorised.text

    # The one-time link signs the browser in and sends it to the page.
    browser.get(live["link"])
    wait_until("the live clock", lambda: int(attribute(browser, "clock", "data-t-ms") or 0) > 0,
               timeout_s=WAIT_S)
    assert browser.current_url.rstrip("/") == server.rest_url
    assert text(browser, "title") == "Live services"
    spent = requests.get(live["link"], verify=live["creds"]["caFile"], timeout=10,
                         allow_redirects=False)
    assert spent.status_code == 403, "a link works once"
    wait_until("the storage lane healthy on the key",
               lambda: attribute(browser, f"storage-state-{cluster}", "data-state") == "healthy",
               timeout_s=WAIT_S)
    assert cluster in text(browser, "meta"), text(browser, "meta")
    # The invariants are judged under the services' own profile (serve all hands it over).
    assert "invariants judged under the services' profile azure-2020" in text(browser, "meta"), \
        text(browser, "meta")
    levers = [b.get_attribute("id") for b in browser.find_elements(By.CSS_SELECTOR, "#levers button")]
    assert "lever-disable-key" in levers and "lever-rotate-key" in levers
    assert "lever-partition-storage" not in levers, "live services have no simulated network"

    # Keyboard only: Tab from the top of the page to "Disable key", Enter.
    browser.execute_script("document.activeElement && document.activeElement.blur();"
                           "window.scrollTo(0, 0);")
    for _ in range(TABS_MAX):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element.get_attribute("id") == "lever-disable-key":
            break
    assert browser.switch_to.active_element.get_attribute("id") == "lever-disable-key"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_until("the lever's answer", lambda: "Disable key: key" in text(browser, "lever-result"),
               timeout_s=WAIT_S)
    wait_until("the storage lane to turn revoked",
               lambda: attribute(browser, f"storage-state-{cluster}", "data-state") == "revoked",
               timeout_s=WAIT_S)
    wait_until("a revoked span in the chart",
               lambda: browser.find_elements(By.CSS_SELECTOR, "#lanes svg .s-revoked"),
               timeout_s=WAIT_S)
    assert "From the dashboard: disable key" in text(browser, "feed")
    screenshot(browser, "dashboard-live-revoked")

    # By mouse: enable the key; the storage starts resuming.
    browser.find_element(By.ID, "lever-enable-key").click()
    wait_until("the storage to leave revoked",
               lambda: attribute(browser, f"storage-state-{cluster}", "data-state")
               in ("resuming", "healthy"), timeout_s=WAIT_S)
    verdicts = browser.execute_script(
        "const out = {};"
        "for (const r of document.querySelectorAll('#verdicts tbody tr'))"
        "  out[r.dataset.id] = r.dataset.outcome;"
        "return out;"
    )
    assert any(k.startswith("invariant-") for k in verdicts), verdicts
    assert verdicts.get("invariant-2") in ("held", "not-applicable"), verdicts
    path = screenshot(browser, "dashboard-live")
    assert path.stat().st_size > 10_000

    # The levers are in the door's event stream too, beside the services' own events.
    token = live["credential"].get_token(sdk.ARM_SCOPE).token
    stream = sdk.EventStream(f"{server.rest_url}/_cmksim/events",
                             {"Authorization": f"Bearer {token}"}, live["creds"]["caFile"])
    try:
        assert stream.status == 200
        lever = stream.wait_for(lambda e: e.get("kind") == "dashboard.lever"
                                and e["data"].get("lever") == "disable-key", WAIT_S,
                                what="the disable-key lever in /_cmksim/events")
        assert lever["service"] == "dashboard" and lever["data"]["ok"] is True, lever
        stream.wait_for(lambda e: e.get("kind") == "storage.state.revoked", WAIT_S,
                        what="the storage's own revocation event")
    finally:
        stream.close()
