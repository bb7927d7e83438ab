"""A table's own retention through cmksim's HTTPS door with azure-mgmt-loganalytics (issue 14):
`tables.get`, `tables.begin_create_or_update` and `tables.begin_update` on a workspace of this
module's own. A table reports its workspace's retention until it has its own
(`retentionInDaysAsDefault`); the workspace's `CanNotDelete` lock (raw ARM: azure-mgmt-resource
is not installed) refuses a decrease with ARM's `ScopeLocked` but lets an increase through;
`retentionInDays: -1` makes the table follow its workspace again. That the retention job honours
a table's own retention is shown in simulated time by storage's tests (`lifecycle_grpc`).

The tests share module state and run in file order.
"""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.loganalytics import models as lam

from conftest import LOCATION, RESOURCE_GROUP, unique

TABLE = "Heartbeat"
OTHER = "Perf"
LOCK = "no-delete"
WORKSPACE_DAYS = 30
LRO_TIMEOUT_S = 60


class State:
    workspace = None


STATE = State()


def lock_url(rest_url: str, workspace_id: str) -> str:
    return (f"{rest_url}{workspace_id}/providers/Microsoft.Authorization/locks/{LOCK}"
            "?api-version=2020-05-01")


def test_tables_follow_the_workspace_retention_until_set(la_mgmt):
    STATE.workspace = la_mgmt.workspaces.begin_create_or_update(
        RESOURCE_GROUP, unique("tblws"),
        lam.Workspace(location=LOCATION, sku=lam.WorkspaceSku(name="PerGB2018"),
                      retention_in_days=WORKSPACE_DAYS)).result(timeout=LRO_TIMEOUT_S)
    table = la_mgmt.tables.get(RESOURCE_GROUP, STATE.workspace.name, TABLE)
    assert table.name == TABLE
    assert table.id.endswith(f"/workspaces/{STATE.workspace.name}/tables/{TABLE}"), table.id
    assert (table.retention_in_days, table.retention_in_days_as_default) == (WORKSPACE_DAYS, True)

    created = la_mgmt.tables.begin_create_or_update(
        RESOURCE_GROUP, STATE.workspace.name, TABLE,
        lam.Table(retention_in_days=90)).result(timeout=LRO_TIMEOUT_S)
    assert (created.retention_in_days, created.retention_in_days_as_default) == (90, False)
    assert created.provisioning_state == "Succeeded"
    assert la_mgmt.tables.get(RESOURCE_GROUP, STATE.workspace.name, TABLE).retention_in_days == 90
    other = la_mgmt.tables.get(RESOURCE_GROUP, STATE.workspace.name, OTHER)
    assert (other.retention_in_days, other.retention_in_days_as_default) == (WORKSPACE_DAYS, True)

    with pytest.raises(HttpResponseError) as out_of_range:
        la_mgmt.tables.begin_update(RESOURCE_GROUP, STATE.workspace.name, TABLE,
                                    lam.Table(retention_in_days=1)).result(timeout=LRO_TIMEOUT_S)
    assert out_of_range.value.status_code == 400, out_of_range.value


def test_the_lock_refuses_a_table_retention_decrease_not_an_increase(la_mgmt, rest_url,
                                                                     admin_headers, ca_file):
    ws = STATE.workspace
    put = requests.put(lock_url(rest_url, ws.id), headers=admin_headers(), verify=ca_file,
                       json={"properties": {"level": "CanNotDelete"}}, timeout=30)
    assert put.status_code == 200, put.text

    for lower in (60, -1):
        with pytest.raises(HttpResponseError) as decrease:
            la_mgmt.tables.begin_update(RESOURCE_GROUP, ws.name, TABLE,
                                        lam.Table(retention_in_days=lower)).result(
                                            timeout=LRO_TIMEOUT_S)
        assert (decrease.value.status_code, decrease.value.error.code) == (409, "ScopeLocked")
        assert "cannot perform write operation" in decrease.value.error.message
    assert la_mgmt.tables.get(RESOURCE_GROUP, ws.name, TABLE).retention_in_days == 90

    longer = la_mgmt.tables.begin_update(RESOURCE_GROUP, ws.name, TABLE,
                                         lam.Table(retention_in_days=120)).result(
                                             timeout=LRO_TIMEOUT_S)
    assert longer.retention_in_days == 120

    removed = requests.delete(lock_url(rest_url, ws.id), headers=admin_headers(),
                              verify=ca_file, timeout=30)
    assert removed.status_code == 200, removed.text


def test_minus_one_makes_the_table_follow_its_workspace_again(la_mgmt):
    ws = STATE.workspace
    back = la_mgmt.tables.begin_update(RESOURCE_GROUP, ws.name, TABLE,
                                       lam.Table(retention_in_days=-1)).result(
                                           timeout=LRO_TIMEOUT_S)
    assert (back.retention_in_days, back.retention_in_days_as_default) == (WORKSPACE_DAYS, True)
    # The workspace's retention changes: the table follows it.
    la_mgmt.workspaces.update(RESOURCE_GROUP, ws.name, lam.WorkspacePatch(retention_in_days=45))
    assert la_mgmt.tables.get(RESOURCE_GROUP, ws.name, TABLE).retention_in_days == 45
