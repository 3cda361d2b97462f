"""Config reload: SIGHUP takes up allowed callers, routing and destinations in a running node,
keeps open associations, and refuses an invalid file keeping the old settings."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import TruthMeasurer, free_port
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_node.node import KneeNode
from dicom_node.reload import ConfigReloader, merge_reloadable, reload_settings
from dicom_node.settings import load_settings

pytestmark = pytest.mark.network


def write(path: Path, tmp: Path, callers: list[str], **extra: Any) -> None:
    cfg: dict[str, Any] = {
        "storage": {"data_dir": str(tmp / "var")},
        "node": {"allowed_callers": [{"ae_title": ae} for ae in callers]},
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    os.utime(path, (time.time() + 1, time.time() + 1))  # a visibly newer mtime


def associate(port: int, calling: str) -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="KNEE_NODE")


def wait_results(reloader: ConfigReloader, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(reloader.results) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(reloader.results) >= count, "no reload happened"


def test_sighup_reloads_callers_keeps_associations_and_refuses_a_bad_file(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    write(config, tmp_path, ["OLD_AE"])
    node = KneeNode(load_settings(config, environ={}), measurer=TruthMeasurer(tmp_path), port=0)
    previous = signal.getsignal(signal.SIGHUP)
    with node:
        reloader = ConfigReloader(node.ctx, config).start()
        reloader.install_signal_handler()
        try:
            assert associate(node.port, "NEW_AE").is_rejected
            held = associate(node.port, "OLD_AE")
            assert held.is_established

            dest = {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}
            write(config, tmp_path, ["NEW_AE"], delivery={"destinations": [dest]})
            os.kill(os.getpid(), signal.SIGHUP)
            wait_results(reloader, 1)
            result = reloader.results[0]
            assert result.applied, result.error
            assert "node.allowed_callers" in result.changed
            assert "delivery.destinations" in result.changed
            assert [d.name for d in node.ctx.settings.delivery.destinations] == ["pacs"]

            fresh = associate(node.port, "NEW_AE")
            assert fresh.is_established, "newly allowed caller refused after reload"
            assert associate(node.port, "OLD_AE").is_rejected, "removed caller still admitted"
            # the association opened before the reload goes on working
            assert held.is_established and held.send_c_echo().Status == 0x0000
            held.release()
            fresh.release()

            config.write_text(
                yaml.safe_dump(
                    {"node": {"allowed_callers": [{"ae_title": "WAY_TOO_LONG_AE_TITLE_X"}]}}
                )
            )
            before = node.ctx.settings
            os.kill(os.getpid(), signal.SIGHUP)
            wait_results(reloader, 2)
            refused = reloader.results[1]
            assert not refused.applied
            assert "node.allowed_callers.0.ae_title" in (refused.error or "")
            assert node.ctx.settings is before
            still = associate(node.port, "NEW_AE")
            assert still.is_established, "a refused file must keep the running settings"
            still.release()
        finally:
            signal.signal(signal.SIGHUP, previous)
            reloader.stop()


def test_changes_needing_a_restart_are_named_and_not_applied(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write(config, tmp_path, ["A"])
    old = load_settings(config, environ={})
    write(
        config,
        tmp_path,
        ["B"],
        node={"port": 104},
        routing={"rules": [{"name": "any-knee", "view_positions": ["AP", "PA", "LL"]}]},
    )
    new = load_settings(config, environ={})
    merged, changed, restart = merge_reloadable(old, new)
    assert merged.node.port == old.node.port
    assert [c.ae_title for c in merged.node.allowed_callers] == ["B"]
    assert merged.routing.rules[0].name == "any-knee"
    assert restart == ["node.port"]
    assert set(changed) == {"node.allowed_callers", "routing.rules"}
    with pytest.raises(TypeError, match="Settings"):
        merge_reloadable(old, {})  # type: ignore[arg-type]


def test_file_watcher_reloads_on_a_new_mtime(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write(config, tmp_path, ["A"])

    class Ctx:  # reload_settings only reads and replaces ``settings``
        settings = load_settings(config, environ={})

    ctx = Ctx()
    reloader = ConfigReloader(ctx, config, watch_interval_s=0.05).start()  # type: ignore[arg-type]
    try:
        write(config, tmp_path, ["B"])
        wait_results(reloader, 1)
    finally:
        reloader.stop()
    assert [c.ae_title for c in ctx.settings.node.allowed_callers] == ["B"]
    assert reload_settings(ctx, tmp_path / "missing.yaml").error is not None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="watch_interval_s"):
        ConfigReloader(ctx, config, watch_interval_s=0)  # type: ignore[arg-type]
