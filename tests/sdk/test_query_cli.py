"""`cmksim query WORKSPACE 'KQL'` against the same live services (issue 11): the same query path
as the Logs Query API, from the command line, by customerId or ARM id, as the administrator of
credentials.json (the services require tokens: `serve all --require-tokens`)."""

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import REPO


def service_urls(server) -> dict:
    text = server.stdout.read_text()
    return dict(re.findall(r"^listening (\w+) (\S+)$", text, re.M))


def cmksim(server, *args):
    binary = Path(os.environ.get("CMKSIM_BIN") or REPO / "target" / "debug" / "cmksim")
    if not binary.is_absolute():
        binary = REPO / binary
    urls = service_urls(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMKSIM_")}
    creds = json.loads((server.data_dir / "credentials.json").read_text())
    return subprocess.run([str(binary), "query", *args, "--ingest", urls["ingest"],
                           "--storage", urls["storage"], "--keyvault", urls["keyvault"],
                           "--client-id", creds["clientId"],
                           "--client-secret", creds["clientSecret"]],
                          capture_output=True, text=True, timeout=60, env=env)


def test_cmksim_query_prints_a_table_by_customer_id_and_json_by_arm_id(server, cmk_world):
    done = cmksim(server, cmk_world.workspace.customer_id, "Heartbeat | count")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].strip() == "Count", done.stdout
    assert done.stdout.rstrip().endswith("(1 rows)"), done.stdout
    done = cmksim(server, cmk_world.workspace.id, "Heartbeat | take 3", "--timespan", "PT1H",
                  "--json")
    assert done.returncode == 0, done.stderr
    assert '"PrimaryResult"' in done.stdout


def test_cmksim_query_refusals_exit_1_with_the_services_words(server, cmk_world):
    done = cmksim(server, cmk_world.workspace.customer_id, "Heartbeat | where")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert re.search(r"\d+:\d+", done.stderr), done.stderr
    done = cmksim(server, "00000000-0000-0000-0000-000000000000", "Heartbeat")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "customer id" in done.stderr
