"""The provider is found by Airflow: ``airflow providers list`` / ``get`` in a fresh Airflow home show it,
its hooks, triggers and connection forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def airflow(home: Path, *args: str) -> str:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    result = subprocess.run([str(VENV_BIN / "airflow"), *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_airflow_lists_the_provider(tmp_path: Path) -> None:
    providers = json.loads(airflow(tmp_path, "providers", "list", "-o", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-lclstream"]
    assert ours and ours[0]["version"] == "0.1.0"
    info = json.loads(airflow(tmp_path, "providers", "get", "airflow-provider-lclstream", "--full", "-o", "json"))[0]
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(types) == {"lclstream", "psik", "elog", "lclstream_kafka"}
    assert types["lclstream"]["conn-fields"]["client_key"]["schema"]["format"] == "password"
    assert "ui-field-behaviour" in types["lclstream_kafka"]
    hooks = airflow(tmp_path, "providers", "hooks", "-o", "json")
    for name in ("LCLStreamHook", "PsikHook", "RunEventsHook", "ElogHook"):
        assert "airflow_provider_lclstream.hooks." in hooks and name in hooks
    triggers = airflow(tmp_path, "providers", "triggers", "-o", "json")
    assert "airflow_provider_lclstream.triggers.run_events" in triggers
