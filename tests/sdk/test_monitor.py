"""Azure Monitor through cmksim's HTTPS door, with the official, unmodified SDKs (issue 11):
a Data Collection Rule created with azure-mgmt-monitor, 10,000 records uploaded with
azure-monitor-ingestion's `LogsIngestionClient.upload` (one call; the SDK splits them into
gzip chunks of about 1 MiB), read back with azure-monitor-query's
`LogsQueryClient.query_workspace`; then the key is disabled: uploads still answer 204 while the
records are dropped (the `x-cmksim-outcome` header and the event log say so), queries fail
naming the revoked cluster; the key is enabled again: queries succeed after the resume delay.
Then the refusals: a KQL syntax error (400, line and column), bodies that are not what the
stream declares (400), an unknown rule (404), a token for another audience (401), a principal
without the Monitoring Metrics Publisher role on the rule (403, then 204 once it has it).

The tests share one world (module state) and run in file order. What the SDKs send and expect
is documented in the notes of the research (SPEC.md section 9); in short:
- upload: POST {endpoint}/dataCollectionRules/{immutableId}/streams/{stream}
  ?api-version=2023-01-01, Content-Encoding: gzip, token scope https://monitor.azure.com/.default,
  success is 204 only; `raw_response_hook` (azure-core, documented) sees each chunk's response.
- query: POST {endpoint}/v1/workspaces/{customerId}/query {"query","timespan","workspaces"};
  the token scope is `audience + "/.default"`, the audience defaulting to the endpoint.

Times are simulated (60x): records are stamped relative to GET /_cmksim/clock, and queries use
explicit (start, end) timespans so that the simulated clock running on does not move them.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Dict, List

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.monitor import models as mm
from azure.monitor.ingestion import LogsIngestionClient
from azure.monitor.query import (LogsBatchQuery, LogsQueryClient, LogsQueryError,
                                 LogsQueryResult, LogsQueryStatus)

from conftest import LOCATION, RESOURCE_GROUP, make_credential, unique

MONITOR_SCOPE = "https://monitor.azure.com/.default"
LOG_ANALYTICS_AUDIENCE = "https://api.loganalytics.io"
STREAM = "Custom-CmkDrill"
OUTPUT_STREAM = "Custom-CmkDrill_CL"
TABLE = "CmkDrill_CL"
IMMUTABLE_ID = re.compile(r"^dcr-[0-9a-f]{32}$")
RECORDS = 10_000
PER_MINUTE = 1_000
MINUTES = RECORDS // PER_MINUTE
# Long enough that the SDK's chunks of 1 MiB (sum of the records' JSON sizes) hold about 4,800
# records each: three POSTs, the first two with an uncompressed body a little above 1 MiB (the
# SDK does not count the ", " between records).
PADDING = "x" * 100


class State:
    """What the tests of this module made, in file order."""
    dcr = None
    dcr_name: str = ""
    tag: str = ""
    base: datetime = None  # the first record's minute (simulated time)


STATE = State()


# ---------------------------------------------------------------------------------------------
# helpers


def simulated_now(rest_url: str, admin_headers, ca_file: str) -> datetime:
    answer = requests.get(f"{rest_url}/_cmksim/clock", headers=admin_headers(), verify=ca_file,
                          timeout=30)
    assert answer.status_code == 200, answer.text
    ms = answer.json()["simulatedNowUnixMs"]
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def iso(t: datetime) -> str:
    """The form Log Analytics writes datetimes in (UTC, Z)."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def outcome_of(header: str) -> Dict[str, int]:
    """`stored=10000 buffered=0 dropped=5 dropped.revoked=5` -> {"stored": 10000, ...,
    "dropped.revoked": 5} (other words ignored)."""
    return {k: int(v) for k, v in re.findall(r"([A-Za-z_][A-Za-z_.-]*)=(\d+)", header or "")}


class UploadRecorder:
    """The documented azure-core hooks of one `upload`: each chunk's request and response."""

    def __init__(self):
        self.chunks: List[dict] = []
        self.responses: List[dict] = []

    def request_hook(self, pipeline_request) -> None:
        request = pipeline_request.http_request
        body = request.body if hasattr(request, "body") else request.content
        if hasattr(body, "read"):  # an IO stream given to upload: read it and rewind
            position = body.tell()
            body, _ = body.read(), body.seek(position)
        raw = gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body
        self.chunks.append({"records": len(json.loads(raw)), "uncompressed": len(raw),
                            "wire": len(body), "url": request.url})

    def response_hook(self, pipeline_response) -> None:
        response = pipeline_response.http_response
        self.responses.append({"status": response.status_code,
                               "outcome": response.headers.get("x-cmksim-outcome")})

    def kwargs(self) -> dict:
        return {"raw_request_hook": self.request_hook, "raw_response_hook": self.response_hook}

    def outcome(self) -> Dict[str, int]:
        total: Dict[str, int] = {}
        for r in self.responses:
            assert r["outcome"] is not None, \
                f"a 204 without the x-cmksim-outcome header: {self.responses}"
            for k, v in outcome_of(r["outcome"]).items():
                total[k] = total.get(k, 0) + v
        return total


def ingest_totals(events, mark: int, table: str, expected: int, timeout: float) -> Dict:
    """Sums the `ingest.batch*` events for `table` after `mark` until they account for
    `expected` records (stored + buffered + dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        totals = {"stored": 0, "buffered": 0, "dropped": 0, "reasons": set(), "events": []}
        for e in list(events.events[mark:]):
            kind = e.get("kind", "")
            data = e.get("data") or {}
            if not kind.startswith("ingest.batch"):
                continue
            if data.get("table") != table and table not in e.get("message", ""):
                continue
            totals["events"].append(e)
            if kind == "ingest.batch":
                for k in ("stored", "buffered", "dropped"):
                    totals[k] += int(data.get(k, 0) or 0)
                totals["reasons"].update(r for r in (data.get("reason") or "").split(",") if r)
                totals["reasons"].update((data.get("dropped_by_reason") or {}).keys())
        if totals["stored"] + totals["buffered"] + totals["dropped"] >= expected:
            return totals
        if events.error is not None:
            raise AssertionError(f"the event stream failed: {events.error!r}")
        if time.monotonic() > deadline:
            recent = [f"{e.get('source')} {e.get('kind')}: {e.get('message')}"
                      for e in events.events[mark:][-25:]]
            raise AssertionError(
                f"ingest events for {table} account for {totals['stored']} stored, "
                f"{totals['buffered']} buffered, {totals['dropped']} dropped within "
                f"{timeout:.0f} s, expected {expected} records; latest events:\n"
                + "\n".join(recent))
        time.sleep(0.2)


def storage_event(cluster_name: str, kind: str):
    def match(event: dict) -> bool:
        return (event.get("kind") == kind
                and (cluster_name in event.get("source", "")
                     or cluster_name in event.get("message", "")))
    return match


def mentions_position(message: str, line: int, column: int) -> bool:
    """A parse error's position, in any of the usual spellings: `2:3`, `[2,3]` (Log Analytics:
    "on line [2,3]"), `line 2, column 3`, `line 2, col 3`, `(2, 3)`."""
    patterns = [
        rf"\b{line}:{column}\b",
        rf"\[\s*{line}\s*,\s*{column}\s*\]",
        rf"line\s*{line}\s*,?\s*(column|col|position|pos)\.?\s*{column}\b",
        rf"\(\s*{line}\s*,\s*{column}\s*\)",
    ]
    return any(re.search(p, message, re.I) for p in patterns)


def records(tag: str, base: datetime, count: int, start: int = 0, label: str = "record") -> list:
    """`count` records, PER_MINUTE per simulated minute from `base`, 50 ms apart."""
    out = []
    for i in range(start, start + count):
        minute, within = divmod(i, PER_MINUTE)
        t = base + timedelta(minutes=minute, milliseconds=50 * within)
        out.append({
            "TimeGenerated": iso(t),
            "Computer": f"host-{i % 8:02d}",
            "Message": f"cmk drill {tag} {label} {i:05d} {PADDING}",
            "Level": i % 5,
        })
    return out


def window() -> tuple:
    """The (start, end) timespan that holds every record of this module."""
    return (STATE.base - timedelta(minutes=5), STATE.base + timedelta(minutes=20))


def rows_of(result) -> List[list]:
    assert result.status == LogsQueryStatus.SUCCESS, \
        f"expected a full result, got {result.status}: {getattr(result, 'partial_error', None)}"
    assert len(result.tables) == 1, result.tables
    return [list(row) for row in result.tables[0].rows]


def count_where(logs_query: LogsQueryClient, customer_id: str, condition: str) -> int:
    result = logs_query.query_workspace(customer_id, f"{TABLE} | where {condition} | count",
                                        timespan=window())
    rows = rows_of(result)
    assert result.tables[0].columns == ["Count"], result.tables[0].columns
    assert len(rows) == 1, rows
    return rows[0][0]


def needs(what: str):
    assert STATE.dcr is not None, f"{what} needs the DCR of test_create_the_dcr (it failed)"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def monitor_mgmt(credential, creds, rest_url) -> MonitorManagementClient:
    return MonitorManagementClient(credential, creds["subscriptionId"], base_url=rest_url)


@pytest.fixture(scope="module")
def ingestion(credential, rest_url) -> LogsIngestionClient:
    # kind Direct: the DCR's own logsIngestion endpoint, which cmksim answers with its REST URL.
    return LogsIngestionClient(endpoint=rest_url, credential=credential)


@pytest.fixture(scope="module")
def logs_query(credential, rest_url) -> LogsQueryClient:
    # The SDK asks for a token for `audience + "/.default"`, the audience defaulting to the
    # endpoint; Log Analytics' own audience is https://api.loganalytics.io.
    return LogsQueryClient(credential, endpoint=rest_url, audience=LOG_ANALYTICS_AUDIENCE)


@pytest.fixture(scope="module")
def customer_id(cmk_world) -> str:
    return cmk_world.workspace.customer_id


# ---------------------------------------------------------------------------------------------
# the rule


def test_create_the_dcr(monitor_mgmt, cmk_world, creds, rest_url):
    STATE.dcr_name = unique("cmkdrill-dcr")
    body = mm.DataCollectionRuleResource(
        location=LOCATION,
        kind="Direct",
        description="cmksim SDK test: the CMK drill stream",
        stream_declarations={STREAM: mm.StreamDeclaration(columns=[
            mm.ColumnDefinition(name="TimeGenerated", type="datetime"),
            mm.ColumnDefinition(name="Computer", type="string"),
            mm.ColumnDefinition(name="Message", type="string"),
            mm.ColumnDefinition(name="Level", type="long"),
        ])},
        destinations=mm.DataCollectionRuleDestinations(log_analytics=[
            mm.LogAnalyticsDestination(workspace_resource_id=cmk_world.workspace.id,
                                       name="cmkws")]),
        data_flows=[mm.DataFlow(streams=[STREAM], destinations=["cmkws"],
                                transform_kql="source", output_stream=OUTPUT_STREAM)],
    )
    dcr = monitor_mgmt.data_collection_rules.create(RESOURCE_GROUP, STATE.dcr_name, body)
    assert IMMUTABLE_ID.match(dcr.immutable_id or ""), dcr.immutable_id
    assert dcr.endpoints is not None and dcr.endpoints.logs_ingestion, dcr.endpoints
    assert dcr.endpoints.logs_ingestion.rstrip("/") == rest_url.rstrip("/"), dcr.endpoints
    assert dcr.provisioning_state == "Succeeded", dcr.provisioning_state
    assert dcr.kind == "Direct"
    assert dcr.name == STATE.dcr_name
    assert dcr.id.lower() == (
        f"/subscriptions/{creds['subscriptionId']}/resourceGroups/{RESOURCE_GROUP}/providers/"
        f"Microsoft.Insights/dataCollectionRules/{STATE.dcr_name}").lower()
    assert dcr.type.lower() == "microsoft.insights/datacollectionrules"
    assert list(dcr.stream_declarations) == [STREAM]
    assert [(c.name, c.type) for c in dcr.stream_declarations[STREAM].columns] == [
        ("TimeGenerated", "datetime"), ("Computer", "string"), ("Message", "string"),
        ("Level", "long")]
    assert dcr.data_flows[0].output_stream == OUTPUT_STREAM
    assert dcr.destinations.log_analytics[0].workspace_resource_id.lower() == \
        cmk_world.workspace.id.lower()
    STATE.dcr = dcr

    got = monitor_mgmt.data_collection_rules.get(RESOURCE_GROUP, STATE.dcr_name)
    assert got.immutable_id == dcr.immutable_id
    # A second PUT of the same rule updates it in place: same immutable id.
    again = monitor_mgmt.data_collection_rules.create(RESOURCE_GROUP, STATE.dcr_name, body)
    assert again.immutable_id == dcr.immutable_id


def test_dcr_for_an_unknown_workspace_is_refused(monitor_mgmt, creds):
    missing = (f"/subscriptions/{creds['subscriptionId']}/resourceGroups/{RESOURCE_GROUP}/"
               f"providers/Microsoft.OperationalInsights/workspaces/{unique('nows')}")
    body = {"location": LOCATION, "kind": "Direct", "properties": {
        "streamDeclarations": {STREAM: {"columns": [{"name": "TimeGenerated",
                                                     "type": "datetime"}]}},
        "destinations": {"logAnalytics": [{"workspaceResourceId": missing, "name": "la"}]},
        "dataFlows": [{"streams": [STREAM], "destinations": ["la"],
                       "outputStream": OUTPUT_STREAM}]}}
    with pytest.raises(HttpResponseError) as refused:
        monitor_mgmt.data_collection_rules.create(RESOURCE_GROUP, unique("baddcr"), body)
    assert refused.value.status_code in (400, 404), refused.value


# ---------------------------------------------------------------------------------------------
# upload and query while the key is there


def test_upload_ten_thousand_records_in_one_call(ingestion, events, rest_url, admin_headers,
                                                 ca_file):
    needs("the upload")
    now = simulated_now(rest_url, admin_headers, ca_file)
    STATE.tag = uuid.uuid4().hex[:8]
    STATE.base = (now - timedelta(minutes=40)).replace(second=0, microsecond=0)
    logs = records(STATE.tag, STATE.base, RECORDS)
    recorder = UploadRecorder()
    mark = events.mark()
    ingestion.upload(STATE.dcr.immutable_id, STREAM, logs, **recorder.kwargs())  # no exception

    # What the SDK did (the premise of the test): several gzip chunks, together all records.
    assert len(recorder.chunks) >= 2, recorder.chunks
    assert sum(c["records"] for c in recorder.chunks) == RECORDS
    assert all(c["wire"] < c["uncompressed"] for c in recorder.chunks), recorder.chunks
    assert all(f"/dataCollectionRules/{STATE.dcr.immutable_id}/streams/{STREAM}" in c["url"]
               and "api-version=2023-01-01" in c["url"] for c in recorder.chunks)
    assert any(c["uncompressed"] > 1024 * 1024 for c in recorder.chunks), \
        ("the SDK's chunks were expected to exceed 1 MiB uncompressed (it sums record sizes "
         f"without separators): {recorder.chunks}")
    assert [r["status"] for r in recorder.responses] == [204] * len(recorder.chunks)

    outcome = recorder.outcome()
    assert outcome.get("stored") == RECORDS, recorder.responses
    assert outcome.get("dropped", 0) == 0 and outcome.get("buffered", 0) == 0, recorder.responses

    totals = ingest_totals(events, mark, TABLE, RECORDS, timeout=60)
    assert (totals["stored"], totals["buffered"], totals["dropped"]) == (RECORDS, 0, 0), totals


def test_query_count_by_minute(logs_query, customer_id):
    needs("the query")
    result = logs_query.query_workspace(
        customer_id, f"{TABLE} | summarize count() by bin(TimeGenerated, 1m)",
        timespan=window())
    assert isinstance(result, LogsQueryResult), result
    table = result.tables[0]
    assert table.name == "PrimaryResult"
    assert table.columns == ["TimeGenerated", "count_"], table.columns
    assert table.columns_types == ["datetime", "long"], table.columns_types
    rows = sorted(rows_of(result), key=lambda r: r[0])
    # The SDK turns datetime cells into aware datetimes (it returns the raw string when it cannot
    # parse one).
    assert all(isinstance(r[0], datetime) for r in rows), rows[:3]
    expected = [[STATE.base + timedelta(minutes=m), PER_MINUTE] for m in range(MINUTES)]
    assert rows == expected, rows


def test_query_where_contains(logs_query, customer_id):
    needs("the query")
    assert count_where(logs_query, customer_id, f'Message contains "{STATE.tag}"') == RECORDS
    # Records 00420..00429.
    assert count_where(logs_query, customer_id,
                       f'Message contains "{STATE.tag} record 0042"') == 10
    # contains is case-insensitive in Kusto.
    assert count_where(logs_query, customer_id,
                       f'Message contains "CMK DRILL {STATE.tag.upper()}"') == RECORDS
    assert count_where(logs_query, customer_id,
                       f'Level == 3 and Message contains "{STATE.tag}"') == RECORDS // 5
    assert count_where(logs_query, customer_id, 'Message contains "no such text"') == 0


def test_query_rows_come_back_typed(logs_query, customer_id):
    needs("the query")
    result = logs_query.query_workspace(
        customer_id,
        f'{TABLE} | where Message contains "{STATE.tag} record 01234" '
        "| project TimeGenerated, Computer, Message, Level",
        timespan=window())
    table = result.tables[0]
    assert table.columns == ["TimeGenerated", "Computer", "Message", "Level"]
    assert table.columns_types == ["datetime", "string", "string", "long"]
    rows = rows_of(result)
    assert len(rows) == 1, rows
    expected = records(STATE.tag, STATE.base, 1, start=1234)[0]
    when, computer, message, level = rows[0]
    assert when == STATE.base + timedelta(minutes=1, milliseconds=50 * 234), when
    assert (computer, message, level) == (expected["Computer"], expected["Message"],
                                          expected["Level"])
    assert type(level) is int  # a JSON number, not a string
    # The row is indexable by column name too.
    assert table.rows[0]["Computer"] == expected["Computer"]


def test_query_with_a_duration_timespan(logs_query, customer_id):
    """`timespan=timedelta` is sent as `PT86400.0S`: the last day before (simulated) now."""
    needs("the query")
    result = logs_query.query_workspace(
        customer_id, f'{TABLE} | where Message contains "{STATE.tag}" | count',
        timespan=timedelta(days=1))
    assert rows_of(result) == [[RECORDS]]


def test_query_batch(logs_query, customer_id):
    needs("the query")
    good = LogsBatchQuery(customer_id, f'{TABLE} | where Message contains "{STATE.tag}" | count',
                          timespan=window())
    bad = LogsBatchQuery(customer_id, f"{TABLE} | where", timespan=window())
    results = logs_query.query_batch([good, bad])
    assert len(results) == 2, results
    assert isinstance(results[0], LogsQueryResult), results[0]
    assert [list(r) for r in results[0].tables[0].rows] == [[RECORDS]]
    assert isinstance(results[1], LogsQueryError), results[1]
    assert results[1].status == LogsQueryStatus.FAILURE


def test_query_statistics_and_visualization(logs_query, customer_id):
    """`include_statistics=True` and `include_visualization=True` send `Prefer:
    include-statistics=true,include-render=true`; the answer's `statistics` counts the rows
    scanned and returned, its `render` is the query's `render` with every property."""
    needs("the query")
    text = (f'{TABLE} | where Message contains "{STATE.tag}" '
            "| summarize count() by bin(TimeGenerated, 1m) "
            '| render timechart with (title = "drill", ycolumns = count_)')
    result = logs_query.query_workspace(customer_id, text, timespan=window(),
                                        include_statistics=True, include_visualization=True)
    stats = result.statistics["query"]
    assert stats["inputDatasetStatistics"]["rows"]["scanned"] >= RECORDS, stats
    assert stats["datasetStatistics"][0]["tableRowCount"] == MINUTES, stats
    assert stats["executionTime"] >= 0, stats
    render = result.visualization
    assert render["visualization"] == "timechart", render
    assert render["title"] == "drill" and render["yColumns"] == ["count_"], render
    assert render["xColumn"] is None and render["accumulate"] is False, render
    # Not asked for: neither comes back.
    plain = logs_query.query_workspace(customer_id, text, timespan=window())
    assert plain.statistics is None and plain.visualization is None
    # The same through a batch (the preference travels in the request's own headers).
    batched = logs_query.query_batch([LogsBatchQuery(customer_id, text, timespan=window(),
                                                     include_visualization=True)])
    assert batched[0].visualization["visualization"] == "timechart", batched[0]


def test_query_default_audience_is_the_endpoint(credential, rest_url, customer_id):
    """Without `audience=`, azure-monitor-query asks for a token for `{endpoint}/.default`, here
    https://127.0.0.1:PORT/.default: the door has to issue one (for its own URL) for the plain
    `LogsQueryClient(credential, endpoint=...)` to work."""
    needs("the query")
    plain_client = LogsQueryClient(credential, endpoint=rest_url)
    result = plain_client.query_workspace(
        customer_id, f'{TABLE} | where Message contains "{STATE.tag}" | count',
        timespan=window())
    assert rows_of(result) == [[RECORDS]]


def test_query_at_the_real_host_through_the_proxy(credential, customer_id):
    """The default endpoint, https://api.loganalytics.io, reached through HTTPS_PROXY (the door
    answers CONNECT and its certificate names api.loganalytics.io): no endpoint, no audience."""
    needs("the query")
    default_client = LogsQueryClient(credential)
    result = default_client.query_workspace(
        customer_id, f'{TABLE} | where Message contains "{STATE.tag}" | count',
        timespan=window())
    assert rows_of(result) == [[RECORDS]]


def test_query_with_get(rest_url, credential, customer_id, ca_file):
    """The Log Analytics API also answers GET /v1/workspaces/{id}/query?query=...&timespan=..."""
    needs("the query")
    token = credential.get_token(f"{LOG_ANALYTICS_AUDIENCE}/.default").token
    start, end = window()
    answer = requests.get(
        f"{rest_url}/v1/workspaces/{customer_id}/query",
        params={"query": f'{TABLE} | where Message contains "{STATE.tag}" | count',
                "timespan": f"{iso(start)}/{iso(end)}"},
        headers={"Authorization": f"Bearer {token}"}, verify=ca_file, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tables"][0]["name"] == "PrimaryResult"
    assert body["tables"][0]["columns"] == [{"name": "Count", "type": "long"}]
    assert body["tables"][0]["rows"] == [[RECORDS]]


# ---------------------------------------------------------------------------------------------
# revocation and resume


def test_revoked_key_drops_uploads_and_fails_queries(cmk_world, ingestion, logs_query,
                                                     customer_id, events):
    needs("the revocation")
    mark = events.mark()
    disabled = cmk_world.key_client.update_key_properties(cmk_world.key_name, enabled=False)
    assert disabled.properties.enabled is False
    events.wait_for(storage_event(cmk_world.cluster_name, "storage.state.revoked"), 90,
                    after=mark, what=f"storage.state.revoked of {cmk_world.cluster_name}")

    # Uploads still answer 204, as the real service does; the records are dropped.
    dropped = records(STATE.tag, STATE.base + timedelta(minutes=12), 500, label="revoked")
    recorder = UploadRecorder()
    mark = events.mark()
    ingestion.upload(STATE.dcr.immutable_id, STREAM, dropped, **recorder.kwargs())
    assert [r["status"] for r in recorder.responses] == [204] * len(recorder.chunks)
    outcome = recorder.outcome()
    assert outcome.get("dropped") == 500 and outcome.get("stored", 0) == 0, recorder.responses
    # Per reason, from the front end's outcome runs (issue 15): every record, not one per run.
    assert outcome.get("dropped.revoked") == 500, recorder.responses
    totals = ingest_totals(events, mark, TABLE, 500, timeout=60)
    assert (totals["stored"], totals["dropped"]) == (0, 500), totals
    assert any("revoked" in r for r in totals["reasons"]), totals["reasons"]

    # Queries fail, naming the cluster and its state.
    with pytest.raises(HttpResponseError) as failed:
        logs_query.query_workspace(customer_id, f"{TABLE} | count", timespan=window())
    message = failed.value.message or str(failed.value)
    assert cmk_world.cluster_name in message, message
    assert "revoked" in message.lower(), message
    print(f"query while revoked: {failed.value.status_code} {message}")


def test_enabled_key_resumes_queries_without_the_dropped_records(cmk_world, ingestion,
                                                                 logs_query, customer_id,
                                                                 events):
    needs("the resume")
    mark = events.mark()
    enabled = cmk_world.key_client.update_key_properties(cmk_world.key_name, enabled=True)
    assert enabled.properties.enabled is True
    # seed 000: queries and ingestion resume within 30 minutes (30 s at 60x).
    events.wait_for(storage_event(cmk_world.cluster_name, "storage.state.healthy_cmk"), 120,
                    after=mark, what=f"storage.state.healthy_cmk of {cmk_world.cluster_name}")

    result = logs_query.query_workspace(
        customer_id, f"{TABLE} | summarize count() by bin(TimeGenerated, 1m)",
        timespan=window())
    rows = sorted(rows_of(result), key=lambda r: r[0])
    # The records uploaded while the key was revoked (minute 12) were dropped: never stored.
    assert rows == [[STATE.base + timedelta(minutes=m), PER_MINUTE] for m in range(MINUTES)], rows
    assert count_where(logs_query, customer_id,
                       f'Message contains "{STATE.tag} revoked"') == 0

    # Ingestion stores again.
    recorder = UploadRecorder()
    mark = events.mark()
    ingestion.upload(STATE.dcr.immutable_id, STREAM,
                     records(STATE.tag, STATE.base + timedelta(minutes=13), 100,
                             label="resumed"), **recorder.kwargs())
    assert recorder.outcome().get("stored") == 100, recorder.responses
    ingest_totals(events, mark, TABLE, 100, timeout=60)
    assert count_where(logs_query, customer_id,
                       f'Message contains "{STATE.tag} resumed"') == 100


# ---------------------------------------------------------------------------------------------
# refusals


def test_kql_syntax_error_is_a_400_with_line_and_column(logs_query, customer_id):
    needs("the query")
    # `whre` is no operator: the error is at line 2, column 3.
    with pytest.raises(HttpResponseError) as failed:
        logs_query.query_workspace(customer_id, f"{TABLE}\n| whre Level > 1", timespan=window())
    assert failed.value.status_code == 400, failed.value
    message = failed.value.message or str(failed.value)
    assert mentions_position(message, 2, 3), message


def test_query_of_an_unknown_workspace_is_a_404(logs_query):
    with pytest.raises(HttpResponseError) as failed:
        logs_query.query_workspace(str(uuid.uuid4()), f"{TABLE} | count",
                                   timespan=timedelta(hours=1))
    assert failed.value.status_code == 404, failed.value


def _monitor_post(rest_url, ca_file, token, path, body, content_encoding=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    return requests.post(f"{rest_url}{path}", params={"api-version": "2023-01-01"},
                         headers=headers, data=body, verify=ca_file, timeout=60)


def _stream_path() -> str:
    return f"/dataCollectionRules/{STATE.dcr.immutable_id}/streams/{STREAM}"


def test_upload_of_a_body_that_is_not_an_array_is_a_400(rest_url, credential, ca_file):
    needs("the upload")
    token = credential.get_token(MONITOR_SCOPE).token
    for body, encoding in ((b'{"TimeGenerated": "2026-01-01T00:00:00Z"}', None),
                           (gzip.compress(b'{"not": "an array"}'), "gzip"),
                           (b"this is not JSON", None)):
        answer = _monitor_post(rest_url, ca_file, token, _stream_path(), body, encoding)
        assert answer.status_code == 400, (body, answer.status_code, answer.text)
        assert answer.json().get("error", {}).get("message"), answer.text


def test_upload_of_records_not_matching_the_stream_is_a_400(rest_url, credential, ca_file):
    needs("the upload")
    token = credential.get_token(MONITOR_SCOPE).token
    for record in ({"TimeGenerated": "not a date", "Computer": "h", "Message": "m", "Level": 1},
                   {"TimeGenerated": "2026-01-01T00:00:00Z", "Computer": "h", "Message": "m",
                    "Level": "high"}):
        answer = _monitor_post(rest_url, ca_file, token, _stream_path(),
                               json.dumps([record]).encode())
        assert answer.status_code == 400, (record, answer.status_code, answer.text)
        assert answer.json().get("error", {}).get("message"), answer.text


def test_upload_over_one_mib_is_a_413(rest_url, credential, ca_file):
    """Over 1 MiB on the wire. (The SDK's own chunks, up to 1 MiB of record JSON plus the
    separators, are accepted: see test_upload_ten_thousand_records_in_one_call.)"""
    needs("the upload")
    token = credential.get_token(MONITOR_SCOPE).token
    big = [{"TimeGenerated": "2026-01-01T00:00:00Z", "Computer": "h",
            "Message": uuid.uuid4().hex * 64, "Level": 1} for _ in range(600)]
    body = json.dumps(big).encode()
    assert len(body) > 1024 * 1024
    answer = _monitor_post(rest_url, ca_file, token, _stream_path(), body)
    assert answer.status_code == 413, (answer.status_code, answer.text[:500])


def test_upload_of_a_plain_stream(ingestion):
    """An IO stream is sent as is, in one request: without Content-Encoding when it is not gzip
    (the SDK sniffs the gzip magic of a seekable stream), with it when it is."""
    needs("the upload")
    logs = records(STATE.tag, STATE.base + timedelta(minutes=14), 3, label="stream")
    for body in (json.dumps(logs).encode(), gzip.compress(json.dumps(logs).encode())):
        recorder = UploadRecorder()
        ingestion.upload(STATE.dcr.immutable_id, STREAM, io.BytesIO(body), **recorder.kwargs())
        assert [r["status"] for r in recorder.responses] == [204], recorder.responses
        assert recorder.outcome().get("stored") == 3, recorder.responses


def test_upload_to_an_undeclared_stream_reaches_on_error(ingestion):
    """With `on_error`, a refused chunk is handed to the callback instead of raised."""
    needs("the upload")
    failures = []
    ingestion.upload(STATE.dcr.immutable_id, "Custom-NotDeclared",
                     [{"TimeGenerated": "2026-01-01T00:00:00Z", "Message": "m"}],
                     on_error=failures.append)
    assert len(failures) == 1, failures
    assert isinstance(failures[0].error, HttpResponseError)
    assert failures[0].error.status_code == 400, failures[0].error
    assert "Custom-NotDeclared" in failures[0].error.message
    assert failures[0].failed_logs == [{"TimeGenerated": "2026-01-01T00:00:00Z", "Message": "m"}]


def test_upload_to_an_unknown_rule_is_a_404(ingestion):
    with pytest.raises(HttpResponseError) as failed:
        ingestion.upload("dcr-" + "0" * 32, STREAM,
                         [{"TimeGenerated": "2026-01-01T00:00:00Z", "Computer": "h",
                           "Message": "m", "Level": 1}])
    assert failed.value.status_code == 404, failed.value


def test_upload_with_a_token_for_another_audience_is_a_401(rest_url, credential, ca_file):
    needs("the upload")
    token = credential.get_token("https://management.azure.com/.default").token
    answer = _monitor_post(rest_url, ca_file, token, _stream_path(), b"[]")
    assert answer.status_code == 401, (answer.status_code, answer.text)
    answer = requests.post(f"{rest_url}{_stream_path()}", params={"api-version": "2023-01-01"},
                           headers={"Content-Type": "application/json"}, data=b"[]",
                           verify=ca_file, timeout=60)
    assert answer.status_code == 401, (answer.status_code, answer.text)



def test_upload_needs_the_monitoring_metrics_publisher_role_on_the_rule(
        rest_url, admin_headers, creds, ca_file, customer_id):
    """A second principal of the same tenant, without a role on the rule: the real service's 403
    `OperationFailed`; after an assignment of Monitoring Metrics Publisher on the rule (admin
    API), the same upload answers 204. Sending does not grant reading: its query of the
    workspace is the Logs Query API's 403."""
    needs("the upload")
    made = requests.post(f"{rest_url}/_cmksim/principals", headers=admin_headers(),
                         json={"displayName": unique("sdk-uploader")}, verify=ca_file, timeout=60)
    assert made.status_code == 201, made.text
    uploader = made.json()
    credential = make_credential(uploader["tenantId"], uploader["clientId"],
                                 uploader["clientSecret"], creds["authorityHost"], ca_file)
    client = LogsIngestionClient(endpoint=rest_url, credential=credential)
    logs = records(STATE.tag, STATE.base + timedelta(minutes=15), 2, label="uploader")
    with pytest.raises(HttpResponseError) as refused:
        client.upload(STATE.dcr.immutable_id, STREAM, logs)
    assert refused.value.status_code == 403, refused.value
    assert refused.value.error.code == "OperationFailed", refused.value
    assert ("does not have access to ingest data for the data collection rule with immutable "
            f"Id '{STATE.dcr.immutable_id}'") in refused.value.message
    granted = requests.post(f"{rest_url}/_cmksim/roleAssignments", headers=admin_headers(),
                            json={"principalId": uploader["objectId"],
                                  "role": "Monitoring Metrics Publisher",
                                  "scope": STATE.dcr.id}, verify=ca_file, timeout=60)
    assert granted.status_code == 201, granted.text
    assert granted.json()["properties"]["roleDefinitionName"] == "Monitoring Metrics Publisher"
    recorder = UploadRecorder()
    client.upload(STATE.dcr.immutable_id, STREAM, logs, **recorder.kwargs())
    assert [r["status"] for r in recorder.responses] == [204], recorder.responses
    reader = LogsQueryClient(credential, endpoint=rest_url, audience=LOG_ANALYTICS_AUDIENCE)
    with pytest.raises(HttpResponseError) as denied:
        reader.query_workspace(customer_id, f"{TABLE} | count", timespan=None)
    assert denied.value.status_code == 403, denied.value
    # Role removal (issue 17): DELETE the assignment (admin API) and the same upload is refused
    # again; a second DELETE finds nothing.
    assignment_id = granted.json()["id"]
    removed = requests.delete(f"{rest_url}/_cmksim/roleAssignments", headers=admin_headers(),
                              json={"id": assignment_id}, verify=ca_file, timeout=60)
    assert removed.status_code == 200, removed.text
    assert removed.json()["id"] == assignment_id
    with pytest.raises(HttpResponseError) as refused_again:
        client.upload(STATE.dcr.immutable_id, STREAM, logs)
    assert refused_again.value.status_code == 403, refused_again.value
    gone = requests.delete(f"{rest_url}/_cmksim/roleAssignments", headers=admin_headers(),
                           json={"id": assignment_id}, verify=ca_file, timeout=60)
    assert gone.status_code == 404, gone.text
