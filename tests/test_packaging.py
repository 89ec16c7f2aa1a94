"""Packaging facts other tools rely on: console scripts resolve, engine packages stay Airflow-free,
docker-compose.yaml follows the Compose specification and its embedded service config is valid."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("name", sorted(PYPROJECT["project"]["scripts"]))
def test_console_script_answers_help(name: str) -> None:
    result = subprocess.run([str(BIN / name), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "usage" in result.stdout.lower()


def test_streamer_and_buffer_do_not_import_airflow() -> None:
    code = (
        "import sys\n"
        "import streamer.cli, streamer.runner, streamer.builtins, buffer.cli, buffer.client\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_provider_info_entry_point() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_lclstream")]
    info = ep.load()()
    assert info["package-name"] == "airflow-provider-lclstream"


def test_docker_compose_follows_the_compose_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yaml")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_service_configs_are_valid() -> None:
    from lclstream_api.settings import load_settings
    from psik.config import validate
    from psik.models import PsikConfig

    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    settings = load_settings(yaml.safe_load(compose["configs"]["lclstream-api"]["content"]))
    assert settings.port_pool.start == 20000
    psik = validate(PsikConfig, yaml.safe_load(compose["configs"]["psik"]["content"]), "compose psik config")
    assert set(psik.backends) == {"default"}
    assert set(psik.accounts or {}) == set(settings.accounts or {}) == {"airflow", "hpc"}


def test_docker_compose_elog_config_is_valid(tmp_path: Path) -> None:
    from elog.settings import load_settings as load_elog

    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    path = tmp_path / "elog.yaml"
    path.write_text(compose["configs"]["elog"]["content"])
    elog = load_elog(path)
    assert elog.writers == ["daq"] and elog.listen == "https://0.0.0.0:8446"


def test_docker_compose_gives_airflow_a_connection_for_every_hook_and_the_dags() -> None:
    import json

    from airflow_provider_lclstream.get_provider_info import get_provider_info
    from airflow_provider_lclstream.run_dags.settings import DagWiring, StreamSettings, read_settings

    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    env = compose["services"]["airflow-scheduler"]["environment"]
    conns = {k: json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    wiring = DagWiring()
    for conn_id in (wiring.kafka_conn_id, wiring.lclstream_conn_id, wiring.psik_conn_id, wiring.elog_conn_id):
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in conns
    assert {c["conn_type"] for c in conns.values()} == {
        t["connection-type"] for t in get_provider_info()["connection-types"]}
    variables = {k.removeprefix("AIRFLOW_VAR_").lower(): v for k, v in env.items() if k.startswith("AIRFLOW_VAR_")}
    settings = read_settings(StreamSettings, get=variables.get)  # the run DAGs' own model takes them
    assert settings.consumer_environment == {"CERTIFIED_CONFIG": "/etc/lclstream/pki/hpc"}
    assert "COPY dags /opt/airflow/dags" in (ROOT / "Dockerfile").read_text()


COMPOSE_SERVICES = {"kafka", "postgres", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "elog", "psik-api", "lclstream-api"}


def test_docker_compose_runs_every_piece_from_the_built_image_with_a_healthcheck() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert COMPOSE_SERVICES <= set(services)
    for name in COMPOSE_SERVICES:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    ours = {name: s for name, s in services.items() if s.get("image") == "lclstream:latest"}
    assert set(ours) >= COMPOSE_SERVICES - {"kafka", "postgres"}
    assert all(s.get("build") == "." for s in ours.values())
    assert "pip install" not in (ROOT / "docker-compose.yaml").read_text()  # installed at build time


def test_dockerfile_copies_every_package_it_installs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, f"the Dockerfile does not copy {package}/"
    assert "RUN pip install ." in dockerfile


def test_documents_link_only_to_files_in_the_repository() -> None:
    import re

    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../shared" not in text, f"{doc.name} points outside the repository"
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands_and_what_they_install() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    opening = readme[:readme.index("## ")]
    assert "as root" in opening.replace("**", "") and "system services" in opening.replace("**", "")


def test_make_venv_shows_the_install() -> None:
    result = subprocess.run(["make", "-n", "-B", "venv"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (install,) = [line for line in result.stdout.splitlines() if "install" in line and ".[test]" in line]
    assert " -q" not in install  # pip lists each package instead of a minute of silence
