"""One task table (dicom_node.tasks.TASKS) read by both queue backends."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from dicom_node import queue as node_queue
from dicom_node.celery_app import make_celery
from dicom_node.settings import Settings
from dicom_node.tasks import DELIVER, MEASURE, TASKS, Task

ROOT = Path(__file__).resolve().parents[1]


def test_the_table_holds_measure_and_deliver_with_their_celery_names() -> None:
    assert set(TASKS) == {MEASURE, DELIVER}
    assert TASKS[MEASURE].celery_name == "knee_node.measure_instance"
    assert TASKS[DELIVER].celery_name == "knee_node.deliver_result"
    assert TASKS[DELIVER].delivery_queue and not TASKS[MEASURE].delivery_queue
    assert node_queue.MEASURE_TASK == "knee_node.measure_instance"
    assert node_queue.DELIVER_TASK == "knee_node.deliver_result"
    with pytest.raises(ValueError, match="celery_name must start with 'knee_node.', got 'x'"):
        Task("measure", "x", lambda ctx, i: None)


def test_celery_registers_every_task_of_the_table_as_before() -> None:
    settings = Settings.model_validate(
        {"queue": {"backend": "celery", "soft_time_limit_s": 50, "time_limit_s": 70}}
    )
    app = make_celery(settings)
    try:
        for task in TASKS.values():
            registered = app.tasks[task.celery_name]
            assert registered.acks_late is True and registered.reject_on_worker_lost is True
        assert app.tasks["knee_node.deliver_result"].max_retries is None
        assert (app.conf.task_soft_time_limit, app.conf.task_time_limit) == (50, 70)
        assert set(app.conf.task_routes) == {"knee_node.deliver_result"}
    finally:
        app.close()


def test_celery_task_runs_the_table_entry_and_retries_when_it_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dicom_node.celery_app as celery_app
    import dicom_node.pipeline as pipeline

    calls: list[tuple[str, int]] = []

    def deliver(ctx: Any, row_id: int) -> Any:
        calls.append(("deliver", row_id))
        return pipeline.DeliveryOutcome("retrying", 12.0)

    monkeypatch.setattr(pipeline, "deliver", deliver)
    monkeypatch.setattr(celery_app, "_context", lambda app: object())
    app = make_celery(Settings.model_validate({"queue": {"backend": "celery"}}))
    app.conf.task_always_eager = True
    try:
        retried: list[float] = []
        task = app.tasks["knee_node.deliver_result"]
        monkeypatch.setattr(
            type(task), "retry", lambda self, countdown=None, **kw: retried.append(countdown)
            or RuntimeError("retry")
        )
        with pytest.raises(RuntimeError, match="retry"):
            task.run(5)
        assert calls == [("deliver", 5)] and retried == [12.0]
    finally:
        app.close()


def test_the_queue_does_not_import_the_pipeline_inside_a_function() -> None:
    """The in-process worker used to import dicom_node.pipeline lazily (a hidden circle
    context -> queue -> pipeline); it now reads the task table."""
    tree = ast.parse((ROOT / "dicom_node" / "queue.py").read_text())
    lazy = [
        n.module for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
        for n in ast.walk(f) if isinstance(n, ast.ImportFrom)
    ]
    assert "dicom_node.pipeline" not in lazy
