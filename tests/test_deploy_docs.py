"""The deployment documents stay true to the code: the conformance statement lists exactly
the SOP classes and transfer syntaxes the listener accepts and the sender proposes, the
metrics the endpoint exports are documented, and relative links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dicom_node.listener import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OWN_DOCS = (
    "installation.md",
    "operations.md",
    "security.md",
    "intended_use.md",
    "conformance_statement.md",
    "scaling.md",
)
_UID = re.compile(r"\|\s*(1\.2\.840\.10008\.[\d.]+)\s*\|")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end)]


def test_conformance_statement_lists_what_the_listener_accepts() -> None:
    text = (DOCS / "conformance_statement.md").read_text()
    accepted = _section(text, "### 2.2", "### 2.3")
    uids = set(_UID.findall(accepted))
    assert uids == set(TRANSFER_SYNTAXES)
    overview = _section(text, "## 1. Overview", "## 2.")
    scp = {
        m.group(1)
        for m in re.finditer(r"\|\s*(1\.2\.840\.10008\.[\d.]+)\s*\|\s*no\s*\|\s*yes\s*\|", overview)
    }
    assert scp == set(STORAGE_SOP_CLASSES) | {"1.2.840.10008.1.1"}


def test_conformance_statement_lists_what_the_sender_sends(tmp_path: Path) -> None:
    from node_support import TruthMeasurer, make_dx, write_case
    from pydicom.uid import generate_uid

    from dicom_node.reports import create_measurement_report, create_overlay_image

    text = (DOCS / "conformance_statement.md").read_text()
    overview = _section(text, "## 1. Overview", "## 2.")
    scu = {
        m.group(1)
        for m in re.finditer(r"\|\s*(1\.2\.840\.10008\.[\d.]+)\s*\|\s*yes\s*\|\s*no\s*\|", overview)
    }
    ds, truth = make_dx()
    write_case(tmp_path, ds, truth, "a")
    knees = TruthMeasurer(tmp_path).measure(ds)
    sr = create_measurement_report(ds, knees, device_observer_uid=generate_uid())
    sc = create_overlay_image(ds, knees)
    from dicom_node.reports.presentation_state import create_presentation_state

    pr = create_presentation_state(ds, knees)  # to destinations that list GSPS
    assert scu == {str(sr.SOPClassUID), str(sc.SOPClassUID), str(pr.SOPClassUID)}
    assert "STOW-RS" in text and "GSPS" in text


def test_every_exported_metric_is_documented(tmp_path: Path) -> None:
    from dicom_node.context import NodeContext
    from dicom_node.metrics import NodeCollector
    from dicom_node.node import prepare_database
    from dicom_node.queue import InProcessQueue
    from dicom_node.settings import load_settings

    settings = load_settings(None, environ={"KNEE_NODE_STORAGE__DATA_DIR": str(tmp_path)})
    prepare_database(settings)
    ctx = NodeContext.create(settings, InProcessQueue())
    try:
        names = {family.name for family in NodeCollector(ctx).collect()}
    finally:
        ctx.db.dispose()
    assert len(names) >= 15
    ops = (DOCS / "operations.md").read_text()
    missing = sorted(n for n in names if n not in ops)
    assert not missing, f"metrics not in docs/operations.md: {missing}"


@pytest.mark.parametrize("name", OWN_DOCS)
def test_relative_links_resolve(name: str) -> None:
    text = (DOCS / name).read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path).resolve() if path else DOCS / name
        if file.name in ("model_card.md", "model.md") and not file.exists():
            pytest.skip(f"docs/{file.name} is written by the model's author with the weights")
        assert file.exists(), f"{name}: link to missing {target}"
        if anchor and file.suffix == ".md":
            slugs = {
                re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+\s+(.*)$", file.read_text(), re.M)
            }
            assert anchor in slugs, f"{name}: no heading #{anchor} in {path or name}"
