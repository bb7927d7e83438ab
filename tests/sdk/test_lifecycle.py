"""Data lifecycle through cmksim's HTTPS door with the official SDKs (issue 14, seed 003):
azure-mgmt-loganalytics' `workspace_purge.purge` / `get_purge_status` and `tables.begin_delete`
on the CMK world's workspace, the workspace's management lock (`Microsoft.Authorization/locks`,
CanNotDelete; raw ARM requests, azure-mgmt-resource is not installed) refusing purge, table
delete and a retention decrease with ARM's `ScopeLocked`, and the lock removed letting them
through. Records are uploaded with azure-monitor-ingestion into a table of this module's own and
counted with azure-monitor-query: a purged record's unique value is gone from every query.

The tests share module state and run in file order.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.loganalytics import models as lam
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.monitor import models as mm
from azure.monitor.ingestion import LogsIngestionClient
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from conftest import LOCATION, RESOURCE_GROUP, unique

STREAM = "Custom-Lifecycle"
OUTPUT_STREAM = "Custom-Lifecycle_CL"
TABLE = "Lifecycle_CL"
LOCK = "no-delete"
RECORDS = 30
PURGE_WAIT_S = 60


class State:
    dcr = None
    tag = ""
    base: datetime = None
    canary = ""
    purge_id = ""


STATE = State()


def simulated_now(rest_url, admin_headers, ca_file) -> datetime:
    answer = requests.get(f"{rest_url}/_cmksim/clock", headers=admin_headers(), verify=ca_file,
                          timeout=30)
    assert answer.status_code == 200, answer.text
    return datetime.fromtimestamp(answer.json()["simulatedNowUnixMs"] / 1000, tz=timezone.utc)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def count_where(logs_query, customer_id, condition: str) -> int:
    result = logs_query.query_workspace(
        customer_id, f"{TABLE} | where {condition} | count",
        timespan=(STATE.base - timedelta(minutes=5), STATE.base + timedelta(minutes=5)))
    assert result.status == LogsQueryStatus.SUCCESS, result
    return list(result.tables[0].rows)[0][0]


def lock_url(rest_url: str, workspace_id: str) -> str:
    return (f"{rest_url}{workspace_id}/providers/Microsoft.Authorization/locks/{LOCK}"
            "?api-version=2020-05-01")


@pytest.fixture(scope="module")
def monitor_mgmt(credential, creds, rest_url) -> MonitorManagementClient:
    return MonitorManagementClient(credential, creds["subscriptionId"], base_url=rest_url)


@pytest.fixture(scope="module")
def ingestion(credential, rest_url) -> LogsIngestionClient:
    return LogsIngestionClient(endpoint=rest_url, credential=credential)


@pytest.fixture(scope="module")
def logs_query(credential, rest_url) -> LogsQueryClient:
    return LogsQueryClient(credential, endpoint=rest_url, audience="https://api.loganalytics.io")


def test_lifecycle_upload_records_with_a_canary(cmk_world, monitor_mgmt, ingestion, logs_query,
                                                rest_url, admin_headers, ca_file):
    body = mm.DataCollectionRuleResource(
        location=LOCATION, kind="Direct",
        stream_declarations={STREAM: mm.StreamDeclaration(columns=[
            mm.ColumnDefinition(name="TimeGenerated", type="datetime"),
            mm.ColumnDefinition(name="User", type="string"),
            mm.ColumnDefinition(name="Seq", type="long"),
        ])},
        destinations=mm.DataCollectionRuleDestinations(log_analytics=[
            mm.LogAnalyticsDestination(workspace_resource_id=cmk_world.workspace.id,
                                       name="ws")]),
        data_flows=[mm.DataFlow(streams=[STREAM], destinations=["ws"], transform_kql="source",
                                output_stream=OUTPUT_STREAM)],
    )
    STATE.dcr = monitor_mgmt.data_collection_rules.create(RESOURCE_GROUP, unique("lcdcr"), body)
    STATE.tag = uuid.uuid4().hex[:8]
    STATE.canary = f"canary-{STATE.tag}"
    STATE.base = simulated_now(rest_url, admin_headers, ca_file) - timedelta(minutes=2)
    logs = [{"TimeGenerated": iso(STATE.base + timedelta(seconds=i)),
             "User": STATE.canary if i % 10 == 0 else f"user-{STATE.tag}-{i}", "Seq": i}
            for i in range(RECORDS)]
    ingestion.upload(STATE.dcr.immutable_id, STREAM, logs)
    assert count_where(logs_query, cmk_world.workspace.customer_id, "Seq >= 0") == RECORDS
    assert count_where(logs_query, cmk_world.workspace.customer_id,
                       f"User == '{STATE.canary}'") == 3


def test_lifecycle_lock_refuses_purge_table_delete_and_retention_decrease(
        cmk_world, la_mgmt, rest_url, admin_headers, ca_file):
    ws = cmk_world.workspace
    put = requests.put(lock_url(rest_url, ws.id), headers=admin_headers(), verify=ca_file,
                       json={"properties": {"level": "CanNotDelete"}}, timeout=30)
    assert put.status_code == 200, put.text
    assert put.json()["properties"]["level"] == "CanNotDelete"
    got = requests.get(lock_url(rest_url, ws.id), headers=admin_headers(), verify=ca_file,
                       timeout=30)
    assert got.status_code == 200 and got.json()["name"] == LOCK, got.text

    body = lam.WorkspacePurgeBody(table=TABLE, filters=[lam.WorkspacePurgeBodyFilters(
        column="User", operator="==", value=STATE.canary)])
    with pytest.raises(HttpResponseError) as purge:
        la_mgmt.workspace_purge.purge(RESOURCE_GROUP, ws.name, body)
    assert purge.value.status_code == 409, purge.value
    assert purge.value.error.code == "ScopeLocked", purge.value.error
    assert "cannot perform delete operation because following scope(s) are locked" in \
        purge.value.error.message

    with pytest.raises(HttpResponseError) as delete:
        la_mgmt.tables.begin_delete(RESOURCE_GROUP, ws.name, TABLE).result(timeout=60)
    assert (delete.value.status_code, delete.value.error.code) == (409, "ScopeLocked")

    current = la_mgmt.workspaces.get(RESOURCE_GROUP, ws.name)
    lower = lam.WorkspacePatch(retention_in_days=current.retention_in_days - 1)
    with pytest.raises(HttpResponseError) as decrease:
        la_mgmt.workspaces.update(RESOURCE_GROUP, ws.name, lower)
    assert (decrease.value.status_code, decrease.value.error.code) == (409, "ScopeLocked")
    assert "cannot perform write operation" in decrease.value.error.message


def test_lifecycle_unlock_then_purge_completes(cmk_world, la_mgmt, logs_query, rest_url,
                                               admin_headers, ca_file):
    ws = cmk_world.workspace
    removed = requests.delete(lock_url(rest_url, ws.id), headers=admin_headers(),
                              verify=ca_file, timeout=30)
    assert removed.status_code == 200, removed.text
    again = requests.delete(lock_url(rest_url, ws.id), headers=admin_headers(),
                            verify=ca_file, timeout=30)
    assert again.status_code == 204, again.text

    body = lam.WorkspacePurgeBody(table=TABLE, filters=[lam.WorkspacePurgeBodyFilters(
        column="User", operator="==", value=STATE.canary)])
    headers = {}
    answer = la_mgmt.workspace_purge.purge(
        RESOURCE_GROUP, ws.name, body, cls=lambda _r, d, h: (headers.update(h), d)[1])
    STATE.purge_id = answer.operation_id
    assert STATE.purge_id, answer
    assert headers["x-ms-status-location"].split("?")[0].endswith(
        f"/workspaces/{ws.name}/operations/{STATE.purge_id}"), headers
    deadline = time.monotonic() + PURGE_WAIT_S
    status = la_mgmt.workspace_purge.get_purge_status(RESOURCE_GROUP, ws.name, STATE.purge_id)
    while status.status != "completed" and time.monotonic() < deadline:
        assert status.status == "pending", status
        time.sleep(1)
        status = la_mgmt.workspace_purge.get_purge_status(RESOURCE_GROUP, ws.name,
                                                          STATE.purge_id)
    assert status.status == "completed", status
    assert count_where(logs_query, ws.customer_id, f"User == '{STATE.canary}'") == 0
    assert count_where(logs_query, ws.customer_id, "Seq >= 0") == RECORDS - 3

    with pytest.raises(HttpResponseError) as unknown:
        la_mgmt.workspace_purge.get_purge_status(RESOURCE_GROUP, ws.name, str(uuid.uuid4()))
    assert unknown.value.status_code == 404


def test_lifecycle_table_delete(cmk_world, la_mgmt, logs_query):
    ws = cmk_world.workspace
    la_mgmt.tables.begin_delete(RESOURCE_GROUP, ws.name, TABLE).result(timeout=60)
    # The table is gone with its declaration: a query of it is refused as an unknown table.
    with pytest.raises(HttpResponseError) as unknown:
        count_where(logs_query, ws.customer_id, "Seq >= 0")
    assert "UnknownTable" in str(unknown.value), unknown.value
