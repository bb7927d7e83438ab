"""The whole customer-managed-key set-up driven by azure-mgmt-loganalytics and
azure-mgmt-keyvault against cmksim's ARM door, then a revocation and a resume seen in the event
log (/_cmksim/events).

Order matters and is the order of a real set-up (seed 000): vault and key, cluster (poll to
Succeeded), access policy for the cluster's identity, key identifier on the cluster, workspace,
link; disable the key -> storage revoked; enable it -> storage resuming, then healthy again after
the 30-minute resume delay (30 s at 60x); unlink, delete. The tests of this module share one
world (module fixture) and run in file order.
"""

from __future__ import annotations

import re
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.keyvault import models as kvm
from azure.mgmt.loganalytics import models as lam

from conftest import LOCATION, RESOURCE_GROUP, create_vault, plain, unique, vault_url

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
# azure-2020 (the default profile): capacity 1000..3000 GB/day in steps of 100.
CAPACITY = 1000
LRO_TIMEOUT = 120


def result_of(poller, what: str):
    """An LRO's result, bounded in time."""
    started = time.monotonic()
    value = poller.result(timeout=LRO_TIMEOUT)
    assert poller.done(), f"{what}: not done after {LRO_TIMEOUT} s (status {poller.status()})"
    print(f"{what}: {time.monotonic() - started:.1f} s")
    return value


def storage_event(cluster_name: str, kind: str):
    def match(event: dict) -> bool:
        return (event.get("kind") == kind
                and (cluster_name in event.get("source", "")
                     or cluster_name in event.get("message", "")))
    return match


class World:
    """What the set-up made, shared by the tests of this module."""
    vault = None
    key = None
    cluster = None
    workspace = None
    link = None


@pytest.fixture(scope="module")
def world(kv_mgmt, la_mgmt, creds, credential):
    w = World()
    w.vault_name = unique("cmkkv")
    w.key_name = unique("logs-cmk")
    # Cluster names: letters and digits only (the catalogue's InvalidParameter otherwise).
    w.cluster_name = unique("cmkcluster").replace("-", "")
    w.workspace_name = unique("cmkws")
    yield w
    # Best-effort clean-up if a test stopped half-way (the last test does it and asserts it).
    for action in (
        lambda: la_mgmt.linked_services.begin_delete(RESOURCE_GROUP, w.workspace_name,
                                                     "cluster").result(timeout=LRO_TIMEOUT),
        lambda: la_mgmt.workspaces.begin_delete(RESOURCE_GROUP, w.workspace_name)
        .result(timeout=LRO_TIMEOUT),
        lambda: la_mgmt.clusters.begin_delete(RESOURCE_GROUP, w.cluster_name)
        .result(timeout=LRO_TIMEOUT),
    ):
        try:
            action()
        except Exception:  # noqa: BLE001 - already gone, or the test that failed says why
            pass


@pytest.fixture(scope="module")
def kv_client(world, credential):
    from azure.keyvault.keys import KeyClient
    return KeyClient(vault_url(world.vault_name), credential)


def test_vault_and_key(world, kv_mgmt, creds, kv_client):
    world.vault = create_vault(kv_mgmt, creds, world.vault_name)
    assert world.vault.properties.provisioning_state == "Succeeded"
    world.key = kv_client.create_rsa_key(world.key_name, size=2048, hardware_protected=True,
                                         key_operations=["wrapKey", "unwrapKey"])
    assert plain(world.key.key_type) == "RSA-HSM"


def test_cluster_create_polls_to_succeeded(world, la_mgmt, creds):
    poller = la_mgmt.clusters.begin_create_or_update(
        RESOURCE_GROUP, world.cluster_name,
        lam.Cluster(location=LOCATION,
                    identity=lam.ManagedServiceIdentity(type="SystemAssigned"),
                    sku=lam.ClusterSku(name="CapacityReservation", capacity=CAPACITY)))
    cluster = result_of(poller, "cluster create")
    assert cluster.provisioning_state == "Succeeded", cluster
    assert cluster.name == world.cluster_name
    assert cluster.id.lower() == (
        f"/subscriptions/{creds['subscriptionId']}/resourceGroups/{RESOURCE_GROUP}/providers/"
        f"Microsoft.OperationalInsights/clusters/{world.cluster_name}").lower()
    assert cluster.type.lower() == "microsoft.operationalinsights/clusters"
    assert cluster.location == LOCATION
    assert plain(cluster.identity.type) == "SystemAssigned"
    assert GUID.match(cluster.identity.principal_id or ""), cluster.identity
    assert cluster.identity.tenant_id == creds["tenantId"]
    # The seeds spell it capacityReservation, the SDK's enum CapacityReservation (it compares
    # case-insensitively).
    assert plain(cluster.sku.name).lower() == "capacityreservation", cluster.sku
    assert cluster.sku.capacity == CAPACITY
    assert cluster.cluster_id
    world.cluster = cluster
    again = la_mgmt.clusters.get(RESOURCE_GROUP, world.cluster_name)
    assert again.provisioning_state == "Succeeded"
    assert again.identity.principal_id == cluster.identity.principal_id


def test_grant_the_cluster_identity_on_the_vault(world, kv_mgmt, creds):
    principal = world.cluster.identity.principal_id
    granted = kv_mgmt.vaults.update_access_policy(
        RESOURCE_GROUP, world.vault_name, "add",
        kvm.VaultAccessPolicyParameters(properties=kvm.VaultAccessPolicyProperties(
            access_policies=[kvm.AccessPolicyEntry(
                tenant_id=world.cluster.identity.tenant_id or creds["tenantId"],
                object_id=principal,
                permissions=kvm.Permissions(keys_property=["get", "wrapKey", "unwrapKey"]))])))
    entries = {e.object_id: e for e in granted.properties.access_policies}
    assert principal in entries, granted
    assert {plain(p) for p in entries[principal].permissions.keys_property} == \
        {"get", "wrapKey", "unwrapKey"}
    vault = kv_mgmt.vaults.get(RESOURCE_GROUP, world.vault_name)
    assert principal in {e.object_id for e in vault.properties.access_policies}
    assert creds["objectId"] in {e.object_id for e in vault.properties.access_policies}


def test_cluster_key_update(world, la_mgmt, events):
    mark = events.mark()
    poller = la_mgmt.clusters.begin_update(
        RESOURCE_GROUP, world.cluster_name,
        lam.ClusterPatch(key_vault_properties=lam.KeyVaultProperties(
            key_vault_uri=vault_url(world.vault_name),
            key_name=world.key_name,
            key_version=world.key.properties.version)))
    cluster = result_of(poller, "cluster key update")
    assert cluster.provisioning_state == "Succeeded"
    kvp = cluster.key_vault_properties
    assert kvp.key_vault_uri.rstrip("/") == vault_url(world.vault_name)
    assert (kvp.key_name, kvp.key_version) == (world.key_name, world.key.properties.version)
    # The storage wraps its account key with the new key and runs on it.
    events.wait_for(storage_event(world.cluster_name, "storage.state.healthy_cmk"), 60,
                    after=mark, what=f"storage.state.healthy_cmk of {world.cluster_name}")
    world.cluster = cluster


def test_workspace_create_and_link(world, la_mgmt):
    ws = result_of(la_mgmt.workspaces.begin_create_or_update(
        RESOURCE_GROUP, world.workspace_name,
        lam.Workspace(location=LOCATION, sku=lam.WorkspaceSku(name="PerGB2018"),
                      retention_in_days=30)), "workspace create")
    assert ws.provisioning_state == "Succeeded"
    assert ws.name == world.workspace_name
    assert GUID.match(ws.customer_id or ""), ws
    assert ws.retention_in_days == 30
    world.workspace = ws

    link = result_of(la_mgmt.linked_services.begin_create_or_update(
        RESOURCE_GROUP, world.workspace_name, "cluster",
        lam.LinkedService(write_access_resource_id=world.cluster.id)), "link")
    assert link.write_access_resource_id.lower() == world.cluster.id.lower()
    assert plain(link.provisioning_state) == "Succeeded"
    assert link.id.lower().endswith(
        f"/workspaces/{world.workspace_name}/linkedservices/cluster".lower())
    world.link = link
    got = la_mgmt.linked_services.get(RESOURCE_GROUP, world.workspace_name, "cluster")
    assert got.write_access_resource_id.lower() == world.cluster.id.lower()

    cluster = la_mgmt.clusters.get(RESOURCE_GROUP, world.cluster_name)
    associated = cluster.associated_workspaces or []
    assert [a.workspace_name for a in associated] == [world.workspace_name], associated
    assert associated[0].workspace_id == ws.customer_id
    assert associated[0].resource_id.lower() == ws.id.lower()


def test_disabling_the_key_revokes_the_storage(world, kv_client, events):
    mark = events.mark()
    disabled = kv_client.update_key_properties(world.key_name, enabled=False)
    assert disabled.properties.enabled is False
    revoked = events.wait_for(storage_event(world.cluster_name, "storage.state.revoked"), 90,
                              after=mark, what=f"storage.state.revoked of {world.cluster_name}")
    assert "revoked" in revoked["message"]
    assert revoked.get("source", "").startswith("storage")
    # The key loop was refused for the documented reason.
    denied = events.wait_for(storage_event(world.cluster_name, "storage.poll.denied"), 1,
                             after=mark, what="storage.poll.denied before the revocation")
    assert "KeyDisabled" in denied["message"] or "disabled" in denied["message"], denied


def test_enabling_the_key_resumes_the_storage(world, kv_client, events):
    mark = events.mark()
    enabled = kv_client.update_key_properties(world.key_name, enabled=True)
    assert enabled.properties.enabled is True
    events.wait_for(storage_event(world.cluster_name, "storage.state.resuming"), 60,
                    after=mark, what=f"storage.state.resuming of {world.cluster_name}")
    # seed 000: ingestion and query resume within 30 minutes: 30 s at 60x.
    events.wait_for(storage_event(world.cluster_name, "storage.state.healthy_cmk"), 120,
                    after=mark, what=f"storage.state.healthy_cmk of {world.cluster_name}")


def test_unlink_and_delete_the_cluster(world, la_mgmt):
    unlinked = result_of(la_mgmt.linked_services.begin_delete(
        RESOURCE_GROUP, world.workspace_name, "cluster"), "unlink")
    if unlinked is not None:
        assert unlinked.write_access_resource_id is None or \
            unlinked.write_access_resource_id.lower() == world.cluster.id.lower()
    with pytest.raises(ResourceNotFoundError):
        la_mgmt.linked_services.get(RESOURCE_GROUP, world.workspace_name, "cluster")
    cluster = la_mgmt.clusters.get(RESOURCE_GROUP, world.cluster_name)
    assert not cluster.associated_workspaces, cluster.associated_workspaces

    result_of(la_mgmt.clusters.begin_delete(RESOURCE_GROUP, world.cluster_name),
              "cluster delete")
    with pytest.raises(ResourceNotFoundError):
        la_mgmt.clusters.get(RESOURCE_GROUP, world.cluster_name)


@pytest.mark.xfail(raises=HttpResponseError, strict=True,
                   reason="cmksim answers DELETE .../workspaces/{w} with 405 OperationNotSupported "
                          "(storage.v1.Workspaces has no delete); remove this mark when it does")
def test_delete_the_workspace(world, la_mgmt):
    result_of(la_mgmt.workspaces.begin_delete(RESOURCE_GROUP, world.workspace_name),
              "workspace delete")
    with pytest.raises(ResourceNotFoundError):
        la_mgmt.workspaces.get(RESOURCE_GROUP, world.workspace_name)
