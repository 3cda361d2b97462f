"""``GET /status``: the node's recent jobs as HTML, checked against the database rows.

A node (in-process queue, truth-reading measurer) measures three knee radiographs, one of
them flagged, and sends each result to a PACS that answers and to one that does not; the
page is fetched over HTTP, then loaded in headless Chromium (DOM text and a screenshot).
"""

from __future__ import annotations

import html
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import PHI_BIRTH, PHI_ID, PHI_NAME, MetricsSite, StoreSCP
from status_page_shot import CHROMIUM, DEMO_CASES, chromium, screenshot

from dicom_node.commands.status import results_text, study_tag
from dicom_node.db.models import Delivery, Job
from dicom_node.status_page import REFRESH_S

pytestmark = pytest.mark.network


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        return resp.read().decode("utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsSite]:
    pacs = StoreSCP().start()
    s = MetricsSite(tmp_path_factory.mktemp("status"), pacs.port, max_attempts=2,
                    dead_archive=True).start()
    try:
        s.push(*DEMO_CASES)
        assert s.node.wait_idle(120)
        yield s
    finally:
        s.stop()
        pacs.stop()


def test_status_page_shows_the_database_rows(site: MetricsSite) -> None:
    page = fetch(site.status_url)
    assert f'<meta http-equiv="refresh" content="{REFRESH_S}">' in page
    assert 'queue depth: <b id="queue-depth">0</b>' in page
    assert 'database: <b class="ok">ok</b>' in page
    with site.node.ctx.db.session() as s:
        jobs = s.query(Job).order_by(Job.id).all()
        assert [j.state for j in jobs] == ["done", "flagged", "done"]
        for j in jobs:
            assert f'id="job-{j.id}"' in page
            row = page.split(f'id="job-{j.id}"', 1)[1].split("</tr>", 1)[0]
            assert f"<td>{j.state}</td>" in row
            assert study_tag(j.instance.study_instance_uid) in row
            assert "MODALITY" in row
            assert html.escape(results_text(j)) in row
            assert f"{j.model_name} {j.model_version}" in row
            for d in j.deliveries:  # the SR's delivery, then the SC's, to each
                assert f"{d.destination} ({', '.join(d.object_kinds)}): {d.state}\n(" in row
            failed = [d for d in j.deliveries if d.state == "failed"]
            assert [(d.destination, d.object_kinds) for d in failed] == [
                ("archive", ["SR"]), ("archive", ["SC"])]
            assert failed[0].last_error and html.escape(failed[0].last_error) in row
            assert "pacs (SR): delivered" in row and "pacs (SC): delivered" in row
        measured, flagged = jobs[0], jobs[1]
        assert results_text(measured).startswith("aTFA FTS +5.0")
        assert "aTFA FTS +5.0°, FNTS +5.0°" in page
        assert measured.verdict and f"<td>{measured.verdict}</td>" in page
        flagged_row = page.split(f'id="job-{flagged.id}"', 1)[1].split("</tr>", 1)[0]
        assert "not determined (flagged)" in flagged_row and "aTFA" not in flagged_row
    assert "truth-double test" in page.split("recent jobs", 1)[0]  # model versions


def test_status_page_holds_no_patient_data(site: MetricsSite) -> None:
    page = fetch(site.status_url)
    for phi in (PHI_NAME, PHI_ID, PHI_BIRTH, "Doe", "Janet", "SECRET", ">A1<"):
        assert phi.lower() not in page.lower()
    assert "accession" not in page  # status.show_accession_number is off by default


def test_status_page_escapes_what_it_shows(site: MetricsSite) -> None:
    with site.node.ctx.db.session() as s:
        d = s.query(Delivery).filter_by(destination="archive").order_by(Delivery.id).first()
        assert d is not None
        saved, d.last_error = d.last_error, '<script>alert("x")</script> & co'
        s.commit()
    try:
        page = fetch(site.status_url)
    finally:
        with site.node.ctx.db.session() as s:
            s.get(Delivery, d.id).last_error = saved
            s.commit()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page


def test_status_page_in_headless_chromium(site: MetricsSite, tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: the page is not loaded in a browser")
    dom = chromium("--dump-dom", site.status_url).stdout
    assert "knee-node status" in dom
    with site.node.ctx.db.session() as s:
        for j in s.query(Job).all():
            assert f'id="job-{j.id}"' in dom
    assert dom.count('class="job state-') == 3
    assert "not determined (flagged)" in dom
    shot = screenshot(site.status_url, tmp_path / "status_page.png")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
