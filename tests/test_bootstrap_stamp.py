"""``scripts/bootstrap`` (run by ``scripts/serve`` and ``scripts/test``) installs the project
only when ``pyproject.toml`` changed, and says what it does while it works (issue 17,
item 13: ``serve`` re-ran ``pip install -e`` on every start, 17-25 s to listening)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_PIP = """#!/bin/sh
echo "pip $*" >> "$(dirname "$0")/../pip.log"
printf '#!/bin/sh\\nexit 0\\n' > "$(dirname "$0")/knee-node"
chmod +x "$(dirname "$0")/knee-node"
"""


def _fake_venv(root: Path) -> Path:
    """A venv whose python imports anything and whose pip only records its calls."""
    bin_dir = root / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "pip").write_text(FAKE_PIP)
    for exe in ("python", "pip"):
        (bin_dir / exe).chmod(0o755)
    return root / "venv"


def _bootstrap(venv: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KNEE_NODE_VENV": str(venv), "KNEE_NODE_SKIP_SYSTEM": "1",
           "KNEE_NODE_SKIP_VIEWER": "1"}
    return subprocess.run(
        [str(REPO / "scripts" / "bootstrap")], env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )


def test_bootstrap_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    log = venv / "pip.log"
    first = _bootstrap(venv)
    assert "pip install -q -e .[test]" in log.read_text()
    assert "bootstrap: installing knee-node" in first.stderr, "says what it is doing"
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    assert (venv / ".knee-node-installed").read_text().strip() == digest

    calls = log.read_text()
    second = _bootstrap(venv)  # what `scripts/serve` runs on its second start
    assert log.read_text() == calls, "nothing installed again"
    assert second.stderr == ""

    (venv / ".knee-node-installed").write_text("another pyproject.toml\n")
    _bootstrap(venv)
    assert log.read_text().count("install -q -e") == 2, "installed again after a change"
