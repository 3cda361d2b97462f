"""The project installed as a wheel (not editable) carries its migrations: ``knee-node db
upgrade`` works against a new SQLite file with the migrations from the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_wheel_install_upgrades_a_new_database_with_its_own_migrations(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    if build.returncode != 0:
        pytest.fail(f"pip wheel failed: {build.stderr[-2000:]}")
    [wheel] = wheels.glob("knee_node-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dicom_node/alembic_migrations/env.py" in names
    assert any(n.startswith("dicom_node/alembic_migrations/versions/0001") for n in names)
    # a fresh venv; the wheel unpacked into it (what installing a wheel does); the
    # dependencies seen from the test's environment, after it, without its editable finder
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    zipfile.ZipFile(wheel).extractall(site)
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"data_dir": str(data)}}))
    # neither the node's settings nor a PYTHONPATH (the checkout would shadow the wheel)
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("KNEE_NODE") and k != "PYTHONPATH"
    }
    where = subprocess.run(
        [str(py), "-c", "import dicom_node.db.migrate as m; print(m.migrations_dir())"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout
    done = subprocess.run(
        [str(py), "-c", "from dicom_node.cli import app; app()", "db", "upgrade",
         "--config", str(config)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-2000:]
    head = sorted(p.name for p in (REPO / "alembic" / "versions").glob("0*.py"))[-1][:4]
    assert f"database at {head}" in done.stdout, done.stdout
    assert (data / "knee-node.sqlite").is_file()
