"""Fixtures that hold cmksim's HTTPS front door to the official, unmodified Azure SDKs.

One `cmksim serve all` per test session (ports chosen by the OS, a fresh data directory, 60x
time), driven only through documented SDK options: `authority=` and
`disable_instance_discovery=True` for azure-identity, `base_url=` for the management clients,
and the environment a user would export for Key Vault (`HTTPS_PROXY` to the door, which answers
CONNECT and serves `*.vault.azure.net` inside the tunnel; `REQUESTS_CA_BUNDLE` = the door's CA).
Nothing in the SDKs is patched or mocked.

Environment:
- CMKSIM_BIN: the binary (default: target/debug/cmksim of this repository).
- CMKSIM_SDK_START_TIMEOUT: seconds to wait for `listening rest ...` (default 60).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault import models as kvm
from azure.mgmt.loganalytics import LogAnalyticsManagementClient

REPO = Path(__file__).resolve().parents[2]

VAULT_SCOPE = "https://vault.azure.net/.default"
ARM_SCOPE = "https://management.azure.com/.default"
LOCATION = "eastus"
RESOURCE_GROUP = "cmksim-sdk-tests"

# Simulated durations short enough that the CMK module runs in about a minute of wall time at
# 60x (2m simulated = 2 s real). resume_delay keeps the seed's 30m (30 s real): the resume test
# waits for it.
PROFILE_OVERRIDES = [
    "cluster.provisioning_duration=2m",
    "cluster.key_update_duration=1m",
    "cluster.link_duration=2m",
    "cluster.unlink_duration=2m",
]
TIME_SCALE = 60

# Every permission a key can be given (the admin gets all of them on the test vaults).
ALL_KEY_PERMISSIONS = [
    "get", "list", "update", "create", "import", "delete", "recover", "backup", "restore",
    "decrypt", "encrypt", "unwrapKey", "wrapKey", "verify", "sign", "purge", "rotate",
]


def unique(prefix: str) -> str:
    """A resource name unique to this run (Key Vault names: 3-24 alphanumerics and hyphens)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def jwt_parts(token: str) -> List[dict]:
    """The header and claims of a JWT (no verification: only to read what the server issued)."""
    def part(b64: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
    header, claims, _signature = token.split(".")
    return [part(header), part(claims)]


def plain(value) -> str:
    """An SDK enum member (str mixin) or a str, as the wire string."""
    return getattr(value, "value", value)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Server:
    """A running `cmksim serve all --rest-listen`."""

    def __init__(self, proc: subprocess.Popen, rest_url: str, data_dir: Path, stdout: Path,
                 stderr: Path, credentials: dict):
        self.proc = proc
        self.rest_url = rest_url
        self.data_dir = data_dir
        self.stdout = stdout
        self.stderr = stderr
        self.credentials = credentials

    def stderr_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no stderr)"


def _start_server(tmp: Path) -> Server:
    binary = Path(os.environ.get("CMKSIM_BIN") or REPO / "target" / "debug" / "cmksim")
    if not binary.is_absolute():
        binary = REPO / binary
    if not binary.exists():
        pytest.fail(f"cmksim binary not found at {binary}: run `cargo build --bin cmksim` "
                    "or set CMKSIM_BIN")
    data_dir = tmp / "data"
    stdout_path, stderr_path = tmp / "stdout.log", tmp / "stderr.log"
    args = [
        str(binary), "serve", "all",
        "--data-dir", str(data_dir),
        "--listen", "127.0.0.1:0",
        "--rest-listen", "127.0.0.1:0",
        "--time-scale", str(TIME_SCALE),
        # Storage and ingest refuse calls without a token and a role, so that the suite shows
        # the door's own calls carry the caller's (or the door's) tokens.
        "--require-tokens",
    ]
    for override in PROFILE_OVERRIDES:
        args += ["--profile-override", override]
    # The server itself must not inherit a proxy meant for the SDK clients, nor CMKSIM_*
    # settings of the developer's shell.
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith("CMKSIM_")}
    # stdout/stderr go to files, not pipes: a server that prints more than a pipe holds must
    # never block on a test that stopped reading.
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(tmp))
    server = Server(proc, "", data_dir, stdout_path, stderr_path, {})
    timeout = float(os.environ.get("CMKSIM_SDK_START_TIMEOUT", "60"))
    deadline = time.monotonic() + timeout
    pattern = re.compile(r"^listening rest (https://\S+)\s*$", re.M)
    while True:
        text = stdout_path.read_text(errors="replace")
        found = pattern.search(text)
        if found:
            server.rest_url = found.group(1).rstrip("/")
            break
        if proc.poll() is not None:
            pytest.fail(f"`{' '.join(args)}` exited with {proc.returncode} before listening.\n"
                        f"stdout:\n{text}\nstderr:\n{server.stderr_tail()}")
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"no `listening rest https://...` line within {timeout:.0f} s.\n"
                        f"stdout:\n{text}\nstderr:\n{server.stderr_tail()}")
        time.sleep(0.1)
    credentials_file = data_dir / "credentials.json"
    while not credentials_file.exists():
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"{credentials_file} was not written.\nstderr:\n{server.stderr_tail()}")
        time.sleep(0.1)
    server.credentials = json.loads(credentials_file.read_text())
    return server


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> Optional[int]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return None
    return proc.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    srv = _start_server(tmp_path_factory.mktemp("cmksim"))
    creds = srv.credentials
    # What a user exports after reading `cmksim serve`'s output: trust the door's CA, send
    # https through the door (it serves *.vault.azure.net inside CONNECT tunnels), and reach the
    # door itself (authority, ARM) directly. test_everything_through_the_proxy drops NO_PROXY.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", creds["caFile"])
        mp.setenv("HTTPS_PROXY", creds["httpsProxy"])
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        for name in ("https_proxy", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                     "all_proxy", "CURL_CA_BUNDLE"):
            mp.delenv(name, raising=False)
        yield srv
        code = _stop(srv.proc)
    assert code == 0, f"cmksim did not exit 0 after SIGTERM (exit {code}):\n{srv.stderr_tail()}"


@pytest.fixture(scope="session")
def creds(server) -> Dict[str, str]:
    """The fields of DATA_DIR/credentials.json (camelCase)."""
    needed = ["tenantId", "subscriptionId", "clientId", "clientSecret", "objectId",
              "authorityHost", "armEndpoint", "restUrl", "caFile", "httpsProxy"]
    missing = [k for k in needed if not server.credentials.get(k)]
    assert not missing, f"credentials.json lacks {missing}: {server.credentials}"
    return server.credentials


@pytest.fixture(scope="session")
def rest_url(server) -> str:
    return server.rest_url


@pytest.fixture(scope="session")
def ca_file(creds) -> str:
    return creds["caFile"]


def make_credential(tenant_id: str, client_id: str, secret: str, authority: str,
                    ca_file: str) -> ClientSecretCredential:
    return ClientSecretCredential(tenant_id, client_id, secret, authority=authority,
                                  disable_instance_discovery=True, connection_verify=ca_file)


@pytest.fixture(scope="session")
def credential(creds, ca_file) -> ClientSecretCredential:
    """The administrator, as a user would build it from credentials.json."""
    return make_credential(creds["tenantId"], creds["clientId"], creds["clientSecret"],
                           creds["authorityHost"], ca_file)


@pytest.fixture(scope="session")
def admin_headers(credential) -> Callable[[], Dict[str, str]]:
    """Headers carrying the admin's management-scope token (for /_cmksim/...)."""
    def headers() -> Dict[str, str]:
        return {"Authorization": f"Bearer {credential.get_token(ARM_SCOPE).token}"}
    return headers


@pytest.fixture(scope="session")
def kv_mgmt(credential, creds, rest_url) -> KeyVaultManagementClient:
    return KeyVaultManagementClient(credential, creds["subscriptionId"], base_url=rest_url)


@pytest.fixture(scope="session")
def la_mgmt(credential, creds, rest_url) -> LogAnalyticsManagementClient:
    return LogAnalyticsManagementClient(credential, creds["subscriptionId"], base_url=rest_url)


def vault_url(name: str) -> str:
    return f"https://{name}.vault.azure.net"


def create_vault(kv_mgmt: KeyVaultManagementClient, creds: dict, name: str,
                 sku: str = "premium") -> kvm.Vault:
    """A vault with soft delete, purge protection and every key permission for the admin."""
    params = kvm.VaultCreateOrUpdateParameters(
        location=LOCATION,
        properties=kvm.VaultProperties(
            tenant_id=creds["tenantId"],
            sku=kvm.Sku(family="A", name=sku),
            enable_soft_delete=True,
            soft_delete_retention_in_days=7,
            enable_purge_protection=True,
            access_policies=[kvm.AccessPolicyEntry(
                tenant_id=creds["tenantId"],
                object_id=creds["objectId"],
                permissions=kvm.Permissions(keys_property=list(ALL_KEY_PERMISSIONS)),
            )],
        ),
    )
    poller = kv_mgmt.vaults.begin_create_or_update(RESOURCE_GROUP, name, params)
    vault = poller.result(timeout=120)
    assert poller.done(), f"vault {name} still provisioning after 120 s"
    return vault


@pytest.fixture(scope="session")
def vault(kv_mgmt, creds) -> kvm.Vault:
    """The premium vault the Key Vault and identity tests share."""
    return create_vault(kv_mgmt, creds, unique("sdkkv"))


@pytest.fixture(scope="session")
def key_client(vault, credential) -> KeyClient:
    # Reached at its real host name through HTTPS_PROXY, so the default
    # verify_challenge_resource=True holds.
    return KeyClient(vault_url(vault.name), credential)


class EventStream:
    """`GET /_cmksim/events` (Server-Sent Events) read by a thread into a list."""

    def __init__(self, url: str, headers: Dict[str, str], ca_file: str):
        self.events: List[dict] = []
        self.error: Optional[BaseException] = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._response = requests.get(url, headers=headers, stream=True, verify=ca_file,
                                      timeout=(10, None))
        self.status = self._response.status_code
        self.content_type = self._response.headers.get("Content-Type", "")
        self._thread = threading.Thread(target=self._run, name="cmksim-events", daemon=True)
        if self.status == 200:
            self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._response.iter_lines(chunk_size=None, decode_unicode=True):
                if self._stop.is_set():
                    break
                if line and line.startswith("data:"):
                    event = json.loads(line[5:].strip())
                    with self._cond:
                        self.events.append(event)
                        self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported by wait_for
            if not self._stop.is_set():
                self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def mark(self) -> int:
        """The position after every event seen so far."""
        with self._cond:
            return len(self.events)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float,
                 after: int = 0, what: str = "event") -> dict:
        deadline = time.monotonic() + timeout
        index = after
        with self._cond:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                if self.error is not None:
                    raise AssertionError(f"the event stream failed: {self.error!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = [f"{e.get('source')} {e.get('kind')}: {e.get('message')}"
                              for e in self.events[after:][-25:]]
                    raise AssertionError(f"no {what} within {timeout:.0f} s; latest events:\n"
                                         + "\n".join(recent))
                self._cond.wait(min(remaining, 1.0))

    def close(self) -> None:
        self._stop.set()
        try:
            self._response.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="session")
def events(rest_url, admin_headers, ca_file):
    stream = EventStream(f"{rest_url}/_cmksim/events", admin_headers(), ca_file)
    assert stream.status == 200, f"GET /_cmksim/events answered {stream.status}"
    yield stream
    stream.close()


class CmkWorld:
    """A workspace linked to a dedicated cluster running on a customer-managed key (seed 000's
    set-up, done once per session): see `cmk_world`."""
    vault_name: str
    key_name: str
    key = None
    cluster_name: str
    cluster = None
    workspace_name: str
    workspace = None
    key_client: KeyClient


def _lro(poller, what: str, timeout: float = 120):
    value = poller.result(timeout=timeout)
    assert poller.done(), f"{what}: not done after {timeout:.0f} s (status {poller.status()})"
    return value


@pytest.fixture(scope="session")
def cmk_world(kv_mgmt, la_mgmt, creds, credential, events) -> CmkWorld:
    """Vault + RSA-HSM key, a cluster (SystemAssigned identity) granted on the vault, the key on
    the cluster (waits for storage.state.healthy_cmk), a workspace linked to the cluster.

    The same steps test_arm_cmk.py asserts one by one; here they are done once, with their own
    names, for the modules that need a CMK world without re-testing its set-up (test_monitor.py).
    The cluster and its key are this fixture's alone: a test may revoke and restore the key."""
    from azure.mgmt.loganalytics import models as lam
    w = CmkWorld()
    w.vault_name = unique("monkv")
    w.key_name = unique("mon-cmk")
    w.cluster_name = unique("moncluster").replace("-", "")
    w.workspace_name = unique("monws")
    create_vault(kv_mgmt, creds, w.vault_name)
    w.key_client = KeyClient(vault_url(w.vault_name), credential)
    w.key = w.key_client.create_rsa_key(w.key_name, size=2048, hardware_protected=True,
                                        key_operations=["wrapKey", "unwrapKey"])
    w.cluster = _lro(la_mgmt.clusters.begin_create_or_update(
        RESOURCE_GROUP, w.cluster_name,
        lam.Cluster(location=LOCATION, identity=lam.ManagedServiceIdentity(type="SystemAssigned"),
                    sku=lam.ClusterSku(name="CapacityReservation", capacity=1000))),
        "cluster create")
    principal = w.cluster.identity.principal_id
    kv_mgmt.vaults.update_access_policy(
        RESOURCE_GROUP, w.vault_name, "add",
        kvm.VaultAccessPolicyParameters(properties=kvm.VaultAccessPolicyProperties(
            access_policies=[kvm.AccessPolicyEntry(
                tenant_id=w.cluster.identity.tenant_id or creds["tenantId"], object_id=principal,
                permissions=kvm.Permissions(keys_property=["get", "wrapKey", "unwrapKey"]))])))
    mark = events.mark()
    w.cluster = _lro(la_mgmt.clusters.begin_update(
        RESOURCE_GROUP, w.cluster_name,
        lam.ClusterPatch(key_vault_properties=lam.KeyVaultProperties(
            key_vault_uri=vault_url(w.vault_name), key_name=w.key_name,
            key_version=w.key.properties.version))), "cluster key update")
    events.wait_for(
        lambda e: e.get("kind") == "storage.state.healthy_cmk"
        and (w.cluster_name in e.get("source", "") or w.cluster_name in e.get("message", "")),
        60, after=mark, what=f"storage.state.healthy_cmk of {w.cluster_name}")
    w.workspace = _lro(la_mgmt.workspaces.begin_create_or_update(
        RESOURCE_GROUP, w.workspace_name,
        lam.Workspace(location=LOCATION, sku=lam.WorkspaceSku(name="PerGB2018"),
                      retention_in_days=30)), "workspace create")
    _lro(la_mgmt.linked_services.begin_create_or_update(
        RESOURCE_GROUP, w.workspace_name, "cluster",
        lam.LinkedService(write_access_resource_id=w.cluster.id)), "link")
    yield w
    # Leave the key enabled whatever a test did, so the server's shutdown is not blocked by a
    # revoked storage (best effort).
    try:
        w.key_client.update_key_properties(w.key_name, enabled=True)
    except Exception:  # noqa: BLE001
        pass
