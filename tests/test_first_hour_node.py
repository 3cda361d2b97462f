"""Issue 17, items 7, 9 and 10 as a user meets them in the node's log: why an instance was
ignored, that a delivery gave up (and the command to send it), and that a duplicate's
first result never reached a destination added since (and the command)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from node_support import free_port
from reliability_support import HeaderTruthMeasurer, knee_case
from test_reliability_hardening import _push

from dicom_node.node import KneeNode
from dicom_node.settings import Settings

pytestmark = pytest.mark.network


def _settings(tmp_path: Path, **sections: Any) -> Settings:
    return Settings.model_validate({"storage": {"data_dir": str(tmp_path / "var")}, **sections})


def test_ignored_instance_logs_its_reason_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicom_node")
    with KneeNode(_settings(tmp_path), measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, knee_case(2.0, body_part="CHEST")) == 0
        assert node.wait_idle(30)
    line = next(r.getMessage() for r in caplog.records if "ignored (row" in r.getMessage())
    assert "BodyPartExamined CHEST" in line, line


def test_delivery_give_up_is_logged_with_the_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dicom_node")
    dest = {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}
    s = _settings(tmp_path, delivery={"destinations": [dest], "max_attempts": 1})
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, knee_case(2.0)) == 0
        assert node.wait_idle(60)
    assert "pacs: gave up after 1 attempt(s)" in caplog.text
    assert "knee-node resend --job 1" in caplog.text


def test_duplicate_whose_result_missed_a_new_destination_says_how_to_send_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = knee_case(2.0)
    with KneeNode(_settings(tmp_path), measurer=HeaderTruthMeasurer(), port=0) as node:
        assert _push(node.port, ds) == 0
        assert node.wait_idle(60)
    caplog.set_level(logging.INFO, logger="dicom_node")
    dest = {"name": "new-pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}
    s = _settings(tmp_path, delivery={"destinations": [dest], "max_attempts": 1})
    with KneeNode(s, measurer=HeaderTruthMeasurer(), port=0) as node:  # a destination added
        assert _push(node.port, ds) == 0  # sent again
        assert node.wait_idle(30)
    assert "never reached new-pacs" in caplog.text
    assert "knee-node resend --job 1" in caplog.text
