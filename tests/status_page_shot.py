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

import yaml  # noqa: E402
from node_support import StoreSCP, TruthMeasurer, free_port, make_dx, write_case  # noqa: E402
from pynetdicom import AE  # noqa: E402

from dicom_node.metrics import MetricsServer  # noqa: E402
from dicom_node.node import KneeNode  # noqa: E402
from dicom_node.settings import load_settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


class StatusSite:
    """A node with a metrics endpoint, a live PACS ``pacs`` and a dead destination ``archive``."""

    def __init__(self, tmp: Path, pacs_port: int) -> None:
        self.cases = tmp / "cases"
        cfg = {
            "storage": {"data_dir": str(tmp / "var")},
            "node": {"allowed_callers": [{"ae_title": "MODALITY"}]},
            "delivery": {
                "destinations": [
                    {
                        "name": "pacs",
                        "ae_title": "TEST_PACS",
                        "host": "127.0.0.1",
                        "port": pacs_port,
                    },
                    {
                        "name": "archive",
                        "ae_title": "ARCHIVE",
                        "host": "127.0.0.1",
                        "port": free_port(),
                    },  # nobody listens: fails after max_attempts
                ],
                "backoff_initial_s": 0.05,
                "max_attempts": 2,
            },
            "metrics": {"port": 0},
        }
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        self.settings = load_settings(tmp / "config.yaml", environ={})
        self.node = KneeNode(self.settings, measurer=TruthMeasurer(self.cases), port=0)
        self.metrics: MetricsServer | None = None

    def start(self) -> StatusSite:
        self.node.start()
        self.metrics = MetricsServer(self.node.ctx, "127.0.0.1", 0).start()
        return self

    @property
    def url(self) -> str:
        assert self.metrics is not None
        return f"http://127.0.0.1:{self.metrics.port}/status"

    def stop(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        self.node.stop()

    def push(self, cases: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """Send ``(stem, make_dx kwargs, truth overrides)`` in one association."""
        ae = AE(ae_title="MODALITY")
        datasets = []
        for stem, kw, extra in cases:
            ds, truth = make_dx(**kw)
            truth.update(extra)
            write_case(self.cases, ds, truth, stem)
            datasets.append(ds)
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", self.node.port, ae_title="KNEE_NODE")
        assert assoc.is_established
        assert [assoc.send_c_store(ds).Status for ds in datasets] == [0] * len(datasets)
        assoc.release()


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
        site = StatusSite(Path(tmp), pacs.port).start()
        try:
            site.push(DEMO_CASES)
            assert site.node.wait_idle(120)
            screenshot(site.url, args.out)
        finally:
            site.stop()
            pacs.stop()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
