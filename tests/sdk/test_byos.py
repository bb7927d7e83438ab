"""Queries in the customer's own storage (seed 000 "CMK for queries", BYOS; issue 14 item 4)
through cmksim's HTTPS door with the official SDKs: azure-mgmt-loganalytics'
`saved_searches.create_or_update / get / list_by_workspace` and
`linked_storage_accounts.create_or_update / get / delete`, a storage account over raw ARM requests
(azure-mgmt-storage is not installed; `Microsoft.Storage/storageAccounts` with
`properties.encryption.keySource` and `keyvaultproperties`), its identity granted on the vault
with azure-mgmt-keyvault, and its key disabled and enabled with azure-keyvault-keys.

Linking a `Query` account removes the workspace's saved searches (seed 000: "Existing saves
searches are removed from your workspace"); later ones are sealed under the account's key and
unreadable, with an error naming the account, while that key is disabled. Unlinking (the seeds
say nothing of it; the simulator's choice) sends new saved searches back to the workspace; those
kept in the account stay there and leave the workspace's list.

The tests share module state and run in file order.
"""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient
from azure.mgmt.keyvault import models as kvm
from azure.mgmt.loganalytics import models as lam

from conftest import LOCATION, RESOURCE_GROUP, create_vault, unique, vault_url

STORAGE_API = "2023-01-01"


class State:
    vault_name = ""
    key_name = ""
    key_version = ""
    key_client: KeyClient = None
    workspace = None
    account_name = ""
    account_id = ""
    principal_id = ""


STATE = State()


def account_url(rest_url: str, creds: dict) -> str:
    return (f"{rest_url}/subscriptions/{creds['subscriptionId']}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.Storage/storageAccounts/{STATE.account_name}"
            f"?api-version={STORAGE_API}")


def search(query: str, name: str) -> lam.SavedSearch:
    return lam.SavedSearch(properties=lam.SavedSearchProperties(
        category="ops", display_name=name, query=query))


def test_byos_saved_searches_live_in_the_workspace_before_a_link(kv_mgmt, la_mgmt, creds,
                                                                  credential):
    STATE.vault_name = unique("byoskv")
    STATE.key_name = unique("queries")
    create_vault(kv_mgmt, creds, STATE.vault_name)
    STATE.key_client = KeyClient(vault_url(STATE.vault_name), credential)
    key = STATE.key_client.create_rsa_key(STATE.key_name, size=2048,
                                          key_operations=["wrapKey", "unwrapKey"])
    STATE.key_version = key.properties.version
    poller = la_mgmt.workspaces.begin_create_or_update(
        RESOURCE_GROUP, unique("byosws"),
        lam.Workspace(location=LOCATION, sku=lam.WorkspaceSku(name="PerGB2018")))
    STATE.workspace = poller.result(timeout=120)
    ws = STATE.workspace.name
    for name in ("errors", "slow"):
        saved = la_mgmt.saved_searches.create_or_update(
            RESOURCE_GROUP, ws, name, search(f"Event | where Source == '{name}'", name))
        assert saved.name == name
        assert saved.properties.category == "ops"
    listed = la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws)
    assert sorted(s.name for s in listed.value) == ["errors", "slow"]


def test_byos_storage_account_key_is_checked_as_its_identity(rest_url, creds, admin_headers,
                                                             ca_file, kv_mgmt):
    STATE.account_name = unique("byossa").replace("-", "")[:24]
    url = account_url(rest_url, creds)
    body = {"location": LOCATION, "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "identity": {"type": "SystemAssigned"}}
    created = requests.put(url, json=body, headers=admin_headers(), verify=ca_file, timeout=60)
    assert created.status_code == 200, created.text
    STATE.account_id = created.json()["id"]
    STATE.principal_id = created.json()["identity"]["principalId"]
    assert created.json()["properties"]["encryption"]["keySource"] == "Microsoft.Storage"
    body["properties"] = {"encryption": {
        "keySource": "Microsoft.Keyvault",
        "keyvaultproperties": {"keyvaulturi": vault_url(STATE.vault_name),
                               "keyname": STATE.key_name, "keyversion": STATE.key_version}}}
    # The account's own identity has no access to the key yet: the cluster's message.
    refused = requests.put(url, json=body, headers=admin_headers(), verify=ca_file, timeout=60)
    assert refused.status_code == 400, refused.text
    assert "Failed to validate key" in refused.json()["error"]["message"]
    kv_mgmt.vaults.update_access_policy(
        RESOURCE_GROUP, STATE.vault_name, "add",
        kvm.VaultAccessPolicyParameters(properties=kvm.VaultAccessPolicyProperties(
            access_policies=[kvm.AccessPolicyEntry(
                tenant_id=creds["tenantId"], object_id=STATE.principal_id,
                permissions=kvm.Permissions(keys_property=["get", "wrapKey", "unwrapKey"]))])))
    encrypted = requests.put(url, json=body, headers=admin_headers(), verify=ca_file, timeout=60)
    assert encrypted.status_code == 200, encrypted.text
    encryption = encrypted.json()["properties"]["encryption"]
    assert encryption["keySource"] == "Microsoft.Keyvault"
    assert encryption["keyvaultproperties"]["keyname"] == STATE.key_name


def test_byos_linking_query_removes_the_workspace_saved_searches(la_mgmt):
    ws = STATE.workspace.name
    linked = la_mgmt.linked_storage_accounts.create_or_update(
        RESOURCE_GROUP, ws, "Query",
        lam.LinkedStorageAccountsResource(properties=lam.LinkedStorageAccountsProperties(
            storage_account_ids=[STATE.account_id])))
    assert linked.properties.data_source_type == "Query"
    assert [i.lower() for i in linked.properties.storage_account_ids] == [STATE.account_id.lower()]
    again = la_mgmt.linked_storage_accounts.get(RESOURCE_GROUP, ws, "Query")
    assert [i.lower() for i in again.properties.storage_account_ids] == [STATE.account_id.lower()]
    assert la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws).value == []
    # One account per data source type (seed 000).
    with pytest.raises(HttpResponseError) as two:
        la_mgmt.linked_storage_accounts.create_or_update(
            RESOURCE_GROUP, ws, "Alerts",
            lam.LinkedStorageAccountsResource(properties=lam.LinkedStorageAccountsProperties(
                storage_account_ids=[STATE.account_id, STATE.account_id])))
    assert two.value.status_code == 400


def test_byos_saved_search_unreadable_while_the_account_key_is_disabled(la_mgmt):
    ws = STATE.workspace.name
    text = "SecurityEvent | where Account == 'breakglass'"
    la_mgmt.saved_searches.create_or_update(RESOURCE_GROUP, ws, "breakglass",
                                            search(text, "Break-glass sign-ins"))
    got = la_mgmt.saved_searches.get(RESOURCE_GROUP, ws, "breakglass")
    assert got.properties.query == text
    assert got.properties.display_name == "Break-glass sign-ins"
    STATE.key_client.update_key_properties(STATE.key_name, enabled=False)
    try:
        with pytest.raises(HttpResponseError) as unreadable:
            la_mgmt.saved_searches.get(RESOURCE_GROUP, ws, "breakglass")
        assert unreadable.value.status_code == 403
        message = unreadable.value.error.message
        assert STATE.account_name in message, message
        assert f"keys/{STATE.key_name}" in message, message
        assert "denied since" in message, message
        with pytest.raises(HttpResponseError) as listed:
            la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws)
        assert listed.value.status_code == 403
        with pytest.raises(HttpResponseError) as unwritable:
            la_mgmt.saved_searches.create_or_update(RESOURCE_GROUP, ws, "later",
                                                    search("Heartbeat", "later"))
        assert unwritable.value.status_code == 403
    finally:
        STATE.key_client.update_key_properties(STATE.key_name, enabled=True)
    back = la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws)
    assert [(s.name, s.properties.query) for s in back.value] == [("breakglass", text)]


def test_byos_unlinking_query_sends_new_saved_searches_back_to_the_workspace(la_mgmt):
    ws = STATE.workspace.name
    la_mgmt.linked_storage_accounts.delete(RESOURCE_GROUP, ws, "Query")
    with pytest.raises(HttpResponseError) as gone:
        la_mgmt.linked_storage_accounts.get(RESOURCE_GROUP, ws, "Query")
    assert gone.value.status_code == 404
    assert la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws).value == []
    la_mgmt.saved_searches.create_or_update(RESOURCE_GROUP, ws, "afterwards",
                                            search("Heartbeat | count", "afterwards"))
    listed = la_mgmt.saved_searches.list_by_workspace(RESOURCE_GROUP, ws)
    assert [s.name for s in listed.value] == ["afterwards"]
    # Nothing linked any more: the SDK's delete (200 only) still succeeds.
    la_mgmt.linked_storage_accounts.delete(RESOURCE_GROUP, ws, "Query")
