"""docker/: the compose file is valid for Debian's docker-compose, its wiring is what the
node needs, and the mounted config.yaml validates with the node's settings object.

No Docker engine runs here: nothing is built or started, the files are checked.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dicom_node.settings import load_settings

DOCKER = Path(__file__).resolve().parents[1] / "docker"
COMPOSE = DOCKER / "compose.yaml"
NODE_SERVICES = ("migrate", "listener", "worker-gpu", "worker-cpu")
CONFIG_IN_CONTAINER = "/etc/knee-node/config.yaml"
SECRETS = {"KNEE_NODE_DB_PASSWORD": "pw-test", "ORTHANC_DEMO_PASSWORD": "pw-demo"}


def compose_tool() -> list[str] | None:
    """``docker-compose`` (Debian's v1) or ``docker compose`` (v2 plugin), if installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def run_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = compose_tool()
    if tool is None:
        pytest.skip(
            "neither docker-compose nor `docker compose` is installed (apt install docker-compose)"
        )
    env_file = tmp_path / "empty.env"  # ignore any docker/.env of this checkout
    env_file.write_text("")
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [*tool, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-node anchor and << merges


@pytest.fixture(scope="module")
def node_config() -> Any:
    return load_settings(DOCKER / "config.yaml", environ={})


def test_compose_config_is_valid(tmp_path: Path) -> None:
    out = run_config(tmp_path, SECRETS)
    assert out.returncode == 0, out.stderr


def test_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    out = run_config(tmp_path, {})
    assert out.returncode != 0
    assert "KNEE_NODE_DB_PASSWORD" in out.stderr or "ORTHANC_DEMO_PASSWORD" in out.stderr


def test_migrations_run_before_the_listener_and_workers(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["migrate"]["command"] == ["db", "upgrade"]
    assert s["migrate"]["restart"] == "no"
    assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("listener", "worker-gpu", "worker-cpu"):
        deps = s[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert s["listener"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert s["orthanc"]["depends_on"]["listener"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_health_check(
    compose: dict[str, Any], node_config: Any
) -> None:
    s = compose["services"]
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert s["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    listener = s["listener"]["healthcheck"]["test"]
    assert listener[:4] == ["CMD", "python", "-m", "dicom_node.metrics"]
    assert listener[4] == f"http://127.0.0.1:{node_config.metrics.port}/healthz"
    for worker in ("worker-gpu", "worker-cpu"):
        assert s[worker]["healthcheck"]["test"][-1] == "--celery-worker"
    assert "/system" in " ".join(s["orthanc"]["healthcheck"]["test"])


def test_one_gpu_reserved_for_the_gpu_worker(compose: dict[str, Any]) -> None:
    w = compose["services"]["worker-gpu"]
    [device] = w["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert w["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert compose["services"]["worker-cpu"]["profiles"] == ["cpu"]


def test_config_and_shared_data_are_mounted(compose: dict[str, Any], node_config: Any) -> None:
    data_dir = str(node_config.storage.data_dir)
    for name in NODE_SERVICES:
        svc = compose["services"][name]
        assert f"./config.yaml:{CONFIG_IN_CONTAINER}:ro" in svc["volumes"], name
        assert f"knee-data:{data_dir}" in svc["volumes"], name
        env = svc["environment"]
        assert env["KNEE_NODE_CONFIG"] == CONFIG_IN_CONTAINER
        assert env["KNEE_NODE_DATABASE__PASSWORD"].startswith("${KNEE_NODE_DB_PASSWORD:?")
    assert set(compose["volumes"]) >= {"knee-data", "pg-data", "redis-data", "orthanc-data"}
    assert "pg-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_node_config_validates_and_names_the_compose_services(
    compose: dict[str, Any], node_config: Any
) -> None:
    from sqlalchemy.engine import make_url

    services = set(compose["services"])
    s = node_config
    assert s.queue.backend == "celery" and s.database.auto_migrate is False
    assert make_url(s.database.url).host == "postgres"
    assert re.match(r"redis://redis:6379/\d+$", s.queue.broker_url)
    assert {d.host for d in s.delivery.destinations} <= services
    assert str(s.storage.data_dir).startswith("/"), "listener and workers must agree on paths"
    with_pw = load_settings(DOCKER / "config.yaml", environ={"KNEE_NODE_DATABASE__PASSWORD": "pw"})
    assert make_url(with_pw.database_url).password == "pw"
    published = compose["services"]["listener"]["ports"]
    assert any(p.endswith(f":{s.node.port}") for p in published)
    assert f"127.0.0.1:{s.metrics.port}:{s.metrics.port}" in published


def test_orthanc_and_node_are_wired_both_ways(compose: dict[str, Any], node_config: Any) -> None:
    orthanc = json.loads((DOCKER / "orthanc.json").read_text())
    s = node_config
    # Orthanc -> node
    knee = orthanc["DicomModalities"]["knee"]
    assert (knee["AET"], knee["Host"], knee["Port"]) == (s.node.ae_title, "listener", s.node.port)
    subnet = ipaddress.ip_network(compose["networks"]["knee"]["ipam"]["config"][0]["subnet"])
    host_in_subnet = str(next(subnet.hosts()))
    assert s.node.admits(orthanc["DicomAet"], host_in_subnet)
    assert not s.node.admits("SOMEONE_ELSE", host_in_subnet)
    # node -> Orthanc
    [dest] = [d for d in s.delivery.destinations if d.host == "orthanc"]
    assert (dest.ae_title, dest.port) == (orthanc["DicomAet"], orthanc["DicomPort"])
    assert knee["AllowStore"] is True  # Orthanc accepts the node's SR and SC
    # Orthanc's routing script is mounted where its config says
    mounts = compose["services"]["orthanc"]["volumes"]
    for script in orthanc["LuaScripts"]:
        assert any(m.split(":")[1] == script for m in mounts), script


def test_images_install_cpu_torch_before_the_project() -> None:
    cpu = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", cpu, re.M)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu
    assert "ARG TORCH_VERSION=2.13.0" in cpu
    assert cpu.index('pip install "torch==') < cpu.index("pip install .")
    cuda = (DOCKER / "Dockerfile.cuda").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\w.]+-runtime-", cuda, re.M)
    assert cuda.index('pip install "torch==') < cuda.index("pip install .")
    assert "KNEE_NODE_MODEL__DEVICE=cuda" in cuda


def test_env_example_sets_every_variable_compose_requires() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required and required <= example
