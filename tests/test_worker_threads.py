"""Issue 16: the in-process worker's torch threads (``model.num_threads``).

The embedded node runs the model in a thread of the listener's process. With
``num_threads`` unset it must not take every core (torch's default): it gets all CPUs but
one (at least one). The count is read with ``torch.get_num_threads()`` *inside a job*, in
the worker thread, which is where the setting has to arrive (OpenMP keeps it per thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydicom import Dataset
from reliability_support import HeaderTruthMeasurer, knee_case
from sqlalchemy import select
from test_node_runtime import _push

from dicom_node.db import Job
from dicom_node.measurer import available_cpus, worker_threads
from dicom_node.node import KneeNode
from dicom_node.settings import ModelSettings, Settings


class ThreadsSeen(HeaderTruthMeasurer):
    """The header-truth double, recording torch's thread count during each measurement."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def measure(self, ds: Dataset) -> list[Any]:
        self.seen.append(torch.get_num_threads())
        return super().measure(ds)


def _threads_in_a_job(tmp_path: Path, model: dict[str, Any]) -> list[int]:
    s = Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}, "model": model})
    measurer = ThreadsSeen()
    with KneeNode(s, measurer=measurer, port=0) as node:
        assert _push(node.port, knee_case(3.0)) == 0x0000
        assert node.wait_idle(60)
        with node.ctx.db.session() as sess:
            assert [j.state for j in sess.scalars(select(Job))] == ["done"]
    return measurer.seen


@pytest.fixture
def restore_torch_threads() -> Any:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.network
def test_unset_num_threads_leaves_a_core_to_the_listener(
    tmp_path: Path, restore_torch_threads: None
) -> None:
    torch.set_num_threads(max(2, available_cpus()))  # as torch's default would on >= 2 cores
    seen = _threads_in_a_job(tmp_path, {})
    assert seen == [max(1, available_cpus() - 1)]


@pytest.mark.network
def test_configured_num_threads_reaches_torch_in_the_job(
    tmp_path: Path, restore_torch_threads: None
) -> None:
    torch.set_num_threads(1)
    assert _threads_in_a_job(tmp_path, {"num_threads": 3}) == [3]


@pytest.mark.parametrize(
    ("num_threads", "in_process", "cpus", "expected"),
    [
        (None, True, 2, 1),
        (None, True, 1, 1),
        (None, True, 8, 7),
        (None, False, 8, None),  # Celery worker: torch's default
        (4, True, 2, 4),  # the configured value wins
        (4, False, 2, 4),
    ],
)
def test_worker_threads(
    num_threads: int | None, in_process: bool, cpus: int, expected: int | None
) -> None:
    settings = ModelSettings(num_threads=num_threads)
    assert worker_threads(settings, in_process=in_process, cpus=cpus) == expected

