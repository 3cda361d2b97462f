"""Issue 5, item 7: bad input. The corpus ``tests/data/bad/`` (made by
``tests/data/make_bad.py``; ``manifest.json`` says what each file must get) is pushed
file by file, raw (the sender does not re-encode it); then a bounded hypothesis fuzz
drives the C-STORE handler and the measurement over mutated instances.

For every input: a failure status, or a record with a readable error (or ignored /
measured where that is right); the node keeps serving; nothing is written outside the
spool and results folders.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynetdicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_support import PHI_BIRTH, PHI_ID, PHI_NAME
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from reliability_support import HeaderTruthMeasurer, files_under, knee_case
from sqlalchemy import select

from dicom_node.context import NodeContext
from dicom_node.db import Job, ReceivedInstance
from dicom_node.db.migrate import upgrade
from dicom_node.listener import StorageSCP
from dicom_node.node import KneeNode
from dicom_node.pipeline import measure_instance
from dicom_node.settings import Settings

pytestmark = pytest.mark.network

BAD = Path(__file__).resolve().parent / "data" / "bad"
MANIFEST: dict[str, str] = json.loads((BAD / "manifest.json").read_text())
ESCAPES = (Path("/tmp/knee-node-bad-escape"), Path("/tmp/knee-node-bad-escape-abs"))
REFUSED = "refused"


def _readable(text: str | None) -> bool:
    return bool(text) and len(text or "") >= 10 and "Traceback" not in (text or "")


def _push_raw(port: int, path: Path) -> int | str:
    """C-STORE ``path`` as its bytes are; the status, or REFUSED if no context fits."""
    meta = read_file_meta_info(path)
    ae = AE(ae_title="MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    if not assoc.is_established:  # no presentation context the node could accept
        assert assoc.is_rejected or assoc.is_aborted
        return REFUSED
    try:
        if not assoc.accepted_contexts:
            return REFUSED  # transfer syntax not offered: the sender cannot send it
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else REFUSED
    finally:
        if assoc.is_established:
            assoc.release()


def _echo(port: int) -> bool:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    if assoc.is_established:
        assoc.release()
    return bool(ok)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KneeNode]:
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    # a sender that does not check UIDs (the node's own pynetdicom neither): the
    # handler, not the library, must cope with UIDs too long or crafted as paths
    validators = dict(pynetdicom._config.VALIDATORS, UI=lambda value: (True, ""))
    monkeypatch.setattr(pynetdicom._config, "VALIDATORS", validators)
    for p in ESCAPES:
        p.unlink(missing_ok=True)
    s = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}})
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as n:
        yield n


def _outcome(node: KneeNode, status: int | str, before: int) -> tuple[str, str]:
    """What became of the last push: outcome class and the recorded text."""
    assert node.wait_idle(60)
    with node.ctx.db.session() as s:
        rows = s.scalars(select(ReceivedInstance).where(ReceivedInstance.id > before)).all()
        if status != 0x0000:
            assert all(r.state == "rejected" for r in rows), "refused means not queued"
            return REFUSED, rows[0].reason if rows else f"status {status}"
        [row] = rows
        if row.state in ("ignored", "measured"):
            return row.state, row.reason or ""
        jobs = s.scalars(select(Job).where(Job.instance_id == row.id)).all()
        text = " ".join(j.error or "" for j in jobs) or row.reason or ""
        assert row.state in ("rejected", "failed"), row.state
        return "error", text


def test_bad_corpus_each_file_gets_its_answer(
    node: KneeNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert len(MANIFEST) >= 20 and all((BAD / n).is_file() for n in MANIFEST)
    outside = files_under(tmp_path)
    got: dict[str, tuple[str, str]] = {}
    last = 0
    for name, expected in sorted(MANIFEST.items()):
        status = _push_raw(node.port, BAD / name)
        outcome, text = _outcome(node, status, last)
        with node.ctx.db.session() as s:
            last = max(s.scalars(select(ReceivedInstance.id)).all() or [0])
        got[name] = (outcome, text)
        if expected == "measured_or_error":
            assert outcome in ("measured", "error"), (name, outcome, text)
        else:
            assert outcome == expected, (name, outcome, text)
        if outcome in ("error", "ignored"):
            assert _readable(text), f"{name}: the record says why ({text!r})"
        assert _echo(node.port), f"the node keeps serving after {name}"
    # a good instance after all that is measured
    good = tmp_path / "good.dcm"
    knee_case(3.0).save_as(good, enforce_file_format=True)
    assert _push_raw(node.port, good) == 0x0000
    assert _outcome(node, 0, last)[0] == "measured"
    # nothing written outside the node's folders; spool files only with hashed names
    var = tmp_path / "var"
    new = files_under(tmp_path) - outside - {Path("good.dcm")}
    assert new and all(p.parts[0] == "var" for p in new), sorted(new)
    assert {p.parts[0] for p in files_under(var)} <= {
        "spool",
        "results",
        "knee-node.sqlite",
        "knee-node.sqlite-wal",
        "knee-node.sqlite-shm",
        "knee-node.lock",  # one node per data directory
    }
    for p in (var / "spool").iterdir():
        assert p.suffix == ".dcm" and len(p.stem) == 32 + 1 + 8, p.name
    for p in ESCAPES:
        assert not p.exists(), f"{p} written by a crafted UID"
    assert "job 1" in caplog.text, "the node's logs are captured"
    for phi in (PHI_NAME, PHI_ID, PHI_BIRTH, "Müller", "山田"):
        assert phi not in caplog.text, "no patient data in the logs, whatever the charset"


# -- bounded fuzz over the ingest path: C-STORE handler -> spool -> routing -> pixels --

_TAMPER = st.sampled_from(
    [
        ("Rows", st.integers(0, 65535)),
        ("Columns", st.integers(0, 65535)),
        ("BitsAllocated", st.sampled_from([0, 1, 7, 8, 12, 16, 32, 64])),
        ("BitsStored", st.integers(0, 40)),
        ("SamplesPerPixel", st.integers(0, 4)),
        ("PixelRepresentation", st.integers(0, 2)),
        ("NumberOfFrames", st.integers(-1, 5)),
        ("PhotometricInterpretation", st.text(max_size=16)),
        ("BodyPartExamined", st.sampled_from(["KNEE", "CHEST", "", "knee ", "LEG"])),
        ("SpecificCharacterSet", st.sampled_from(["ISO_IR 192", "ISO_IR 100", "BOGUS", ""])),
        ("PatientName", st.text(max_size=40)),
        ("PixelSpacing", st.lists(st.floats(allow_nan=True), min_size=0, max_size=3)),
    ]
)


def _fuzz_context(root: Path) -> tuple[StorageSCP, NodeContext]:
    s = Settings.model_validate({"storage": {"data_dir": str(root / "var")}})
    s.storage.spool.mkdir(parents=True, exist_ok=True)
    upgrade(s.database_url)

    class Direct:  # measure at once, in the calling thread
        def submit_measurement(self, instance_id: int) -> None:
            try:
                measure_instance(ctx, instance_id)
            except Exception as exc:  # noqa: BLE001 -- the job row records it; checked below
                Direct.last_error = exc

        def submit_delivery(self, delivery_id: int, countdown_s: float = 0.0) -> None:
            raise AssertionError("no destinations configured")

        last_error: Exception | None = None

    ctx = NodeContext.create(s, Direct(), HeaderTruthMeasurer())
    return StorageSCP(ctx), ctx


def _event(file_meta: Any, sop_uid: str, sop_class: str, data: bytes) -> Any:
    request = SimpleNamespace(
        AffectedSOPInstanceUID=sop_uid, AffectedSOPClassUID=sop_class, DataSet=BytesIO(data)
    )
    requestor = SimpleNamespace(ae_title="FUZZER", address="127.0.0.1")
    return SimpleNamespace(
        request=request, file_meta=file_meta, assoc=SimpleNamespace(requestor=requestor)
    )


def _fuzz_one(
    scp: StorageSCP,
    ctx: NodeContext,
    stats: Counter[str],
    edits: list[tuple[str, Any]],
    cut: int | None,
    flips: list[tuple[int, int]],
) -> None:
    """Encode a knee instance with ``edits``, damage its bytes, hand it to the handler."""
    import warnings

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = knee_case(2.0, rows=64, cols=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in edits:
            try:
                setattr(ds, keyword, value)
            except (ValueError, TypeError, OverflowError):
                continue  # pydicom refuses the value itself: not a case
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        try:
            write_dataset(buf, ds)
        except (ValueError, TypeError, OverflowError, UnicodeError, LookupError, OSError):
            stats["not encodable"] += 1
            return  # no sender could send it
    data = bytearray(buf.getvalue())
    for pos, byte in flips:
        if pos < len(data):
            data[pos] = byte
    if cut is not None:
        data = data[:cut]
    with ctx.db.session() as s:
        before = max(s.scalars(select(ReceivedInstance.id)).all() or [0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = scp.on_store(
            _event(ds.file_meta, str(ds.SOPInstanceUID), str(ds.SOPClassUID), bytes(data))
        )
    status = int(getattr(status, "Status", status))  # an int, or a Dataset with ErrorComment
    assert status in (0x0000, 0xA700, 0xC000)
    with ctx.db.session() as s:
        rows = s.scalars(select(ReceivedInstance).where(ReceivedInstance.id > before)).all()
        assert len(rows) == 1, "every C-STORE is recorded, answered success or not"
        [row] = rows
        stats[row.state] += 1
        if status == 0x0000:
            assert row.state in ("ignored", "measured", "failed", "duplicate"), row.state
            if row.state == "failed":
                [job] = row.jobs
                assert _readable(job.error), job.error
        else:
            assert row.state == "rejected" and _readable(row.reason)
        if row.spool_path:
            assert Path(row.spool_path).parent == ctx.settings.storage.spool.resolve()
    tops = {p.name for p in (ctx.settings.storage.data_dir).iterdir()}
    assert tops <= {"spool", "results", *(f"knee-node.sqlite{x}" for x in ("", "-wal", "-shm"))}
    assert not list(ctx.settings.storage.spool.glob(".*.tmp")), "no temporary file left"


def test_an_element_shorter_than_its_vr_is_refused_and_recorded(tmp_path: Path) -> None:
    """Columns (US) with a 1-byte value: the case the fuzzing below found (a
    BytesLengthException out of the routing header read); answered 0xC000 and recorded."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    scp, ctx = _fuzz_context(tmp_path)
    try:
        ds = knee_case(2.0, rows=64, cols=64)
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_dataset(buf, ds)
        data = buf.getvalue()
        columns = b"\x28\x00\x11\x00US\x02\x00"  # (0028,0011) US, length 2
        at = data.index(columns)
        data = data[:at] + b"\x28\x00\x11\x00US\x01\x00@" + data[at + len(columns) + 2:]
        status = scp.on_store(
            _event(ds.file_meta, str(ds.SOPInstanceUID), str(ds.SOPClassUID), data)
        )
        assert int(getattr(status, "Status", status)) == 0xC000
        with ctx.db.session() as s:
            [row] = s.scalars(select(ReceivedInstance)).all()
            assert row.state == "rejected" and "BytesLengthException" in row.reason
            assert row.spool_path is None or not Path(row.spool_path).exists()
    finally:
        ctx.db.dispose()


def test_fuzzed_instances_never_crash_the_handler_or_escape_the_spool(tmp_path: Path) -> None:
    scp, ctx = _fuzz_context(tmp_path)
    stats: Counter[str] = Counter()

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        edits=st.lists(_TAMPER.flatmap(lambda kv: st.tuples(st.just(kv[0]), kv[1])), max_size=4),
        cut=st.one_of(st.none(), st.integers(0, 12000)),
        flips=st.lists(st.tuples(st.integers(0, 12000), st.integers(0, 255)), max_size=6),
    )
    def run(edits: list[tuple[str, Any]], cut: int | None, flips: list[tuple[int, int]]) -> None:
        _fuzz_one(scp, ctx, stats, edits, cut, flips)

    try:
        run()
    finally:
        ctx.db.dispose()
    print(dict(stats))
    assert stats["measured"] >= 5 and stats["rejected"] >= 5 and stats["failed"] >= 5, stats
