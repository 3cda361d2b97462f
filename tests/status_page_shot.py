"""A node with a few jobs and its ``/status`` page; writes a screenshot for the docs.

``python -m tests.status_page_shot --out docs/figures/status_page.png`` (from the repository
root): three knee radiographs through an in-process node (truth-reading measurer): one
measured, one flagged, and every result sent to a PACS that answers and to one that does
not (a failed delivery with its error); then headless Chromium takes a picture of the page.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # node_support, as under pytest

from node_support import MetricsSite, StoreSCP  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


DEMO_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("measured", {"atfa_deg": 5.0}, {}),
    ("flagged", {"atfa_deg": -2.0}, {"quality": "flag", "flag_reasons": ["low confidence"]}),
    ("valgus", {"atfa_deg": 9.0}, {}),
]


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with ``args`` (no sandbox: may run as root in a container)."""
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(url: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    chromium(f"--screenshot={out.resolve()}", "--window-size=1400,900", url)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/status_page.png"))
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None:
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 1
    pacs = StoreSCP().start()
    with tempfile.TemporaryDirectory() as tmp:
        site = MetricsSite(Path(tmp), pacs.port, max_attempts=2, dead_archive=True).start()
        try:
            site.push(*DEMO_CASES)
            assert site.node.wait_idle(120)
            screenshot(site.status_url, args.out)
        finally:
            site.stop()
            pacs.stop()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
