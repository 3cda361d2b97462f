"""Taking up an edited ``config.yaml`` in a running node, without a restart.

``kill -HUP <pid of knee-node serve>`` (or :class:`ConfigWatcher`, watching the file's
modification time) re-reads the file through :func:`dicom_node.settings.load_settings`
(environment overrides included). An invalid file is refused: the error names each bad
key, and the node keeps running on its old settings. A valid file replaces the
*reloadable* parts of the running settings:

* ``node.allowed_callers`` -- checked at each association request, so a newly allowed
  AE is accepted at its next association; open associations are never dropped;
* ``routing`` -- read for each received instance;
* ``delivery`` -- destinations and retry policy, read at each delivery attempt;
* ``reports`` -- read for each SR and SC;
* ``logging.level`` and ``logging.format``.

Other changed keys (ports, AE title, TLS, storage, database, queue, model, metrics) are
logged as needing a restart and keep their running values. A Celery worker takes up a new
file when it restarts; Celery's own SIGHUP handling restarts a worker that is not attached
to a terminal (warm: running tasks finish first).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dicom_node.errors import ConfigError
from dicom_node.settings import Settings, load_settings

if TYPE_CHECKING:
    from dicom_node.context import NodeContext

log = logging.getLogger(__name__)

#: Top-level sections replaced as a whole on reload.
RELOADABLE_SECTIONS: tuple[str, ...] = ("routing", "delivery", "reports")
#: Reloadable keys inside other sections, as (section, key).
RELOADABLE_KEYS: tuple[tuple[str, str], ...] = (
    ("node", "allowed_callers"),
    ("logging", "level"),
    ("logging", "format"),
)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did.

    Attributes
    ----------
    applied
        True if the new settings are in force (possibly with nothing changed).
    changed
        Dotted keys taken up.
    needs_restart
        Dotted keys that changed in the file but keep their running value.
    error
        Why the file was refused (None when applied).
    """

    applied: bool
    changed: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    error: str | None = None


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    """Dotted keys whose values differ between two settings sections."""
    if isinstance(old, BaseModel) and type(old) is type(new):
        out: list[str] = []
        for name in type(old).model_fields:
            out += _diff(getattr(old, name), getattr(new, name), f"{prefix}.{name}".lstrip("."))
        return out
    return [] if old == new else [prefix]


def merge_reloadable(old: Settings, new: Settings) -> tuple[Settings, list[str], list[str]]:
    """``old`` with the reloadable parts of ``new``.

    Returns
    -------
    tuple
        The merged settings, the dotted keys taken up, and those needing a restart.
    """
    if not isinstance(old, Settings) or not isinstance(new, Settings):
        raise TypeError(
            f"old and new must be Settings, got {type(old).__name__}, {type(new).__name__}"
        )
    update: dict[str, Any] = {name: getattr(new, name) for name in RELOADABLE_SECTIONS}
    for section, key in RELOADABLE_KEYS:
        base = update.get(section, getattr(old, section))
        update[section] = base.model_copy(update={key: getattr(getattr(new, section), key)})
    merged = old.model_copy(update=update)
    changed = _diff(old, merged, "")
    needs_restart = _diff(merged, new, "")
    return merged, changed, needs_restart


def reload_settings(ctx: NodeContext, path: Path | str | None) -> ReloadResult:
    """Re-read ``path`` and apply its reloadable parts to the running ``ctx``.

    Parameters
    ----------
    ctx
        The running node's context; ``ctx.settings`` is replaced (one assignment).
    path
        The node's config file (None: ``$KNEE_NODE_CONFIG``).

    Returns
    -------
    ReloadResult
        Never raises for a bad file: the result says why it was refused.
    """
    try:
        new = load_settings(path)
    except ConfigError as exc:
        log.error("config reload refused, keeping the running settings: %s", exc)
        return ReloadResult(False, error=str(exc))
    merged, changed, needs_restart = merge_reloadable(ctx.settings, new)
    ctx.settings = merged
    if any(k.startswith("logging.") for k in changed):
        from dicom_node.logs import configure_logging

        configure_logging(merged.logging.level, merged.logging.format)
    if needs_restart:
        log.warning(
            "config reload: these changes need a restart and are not applied: %s",
            ", ".join(needs_restart),
        )
    log.info("config reloaded from %s: %s", path, ", ".join(changed) or "nothing changed")
    return ReloadResult(True, tuple(changed), tuple(needs_restart))


class ConfigReloader:
    """Reloads on SIGHUP (and, optionally, when the file's mtime changes).

    The signal handler only sets an event; a daemon thread does the reload, so a reload
    never runs inside a signal handler.

    Parameters
    ----------
    ctx
        The running node's context.
    path
        The config file (None: ``$KNEE_NODE_CONFIG``; without a file, nothing to reload).
    watch_interval_s
        Also reload when the file's modification time changes, checked this often
        (None: SIGHUP only).
    """

    def __init__(
        self,
        ctx: NodeContext,
        path: Path | str | None,
        *,
        watch_interval_s: float | None = None,
    ) -> None:
        from dicom_node.settings import config_path

        if watch_interval_s is not None and watch_interval_s <= 0:
            raise ValueError(f"watch_interval_s must be > 0 or None, got {watch_interval_s}")
        self.ctx = ctx
        self.path = config_path(path)
        self.watch_interval_s = watch_interval_s
        self.results: list[ReloadResult] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return None if self.path is None else self.path.stat().st_mtime
        except OSError:
            return None

    def request(self) -> None:
        """Ask for a reload (what the SIGHUP handler calls)."""
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._wake.set()

    def install_signal_handler(self) -> None:
        """Reload on SIGHUP (call from the main thread)."""
        signal.signal(signal.SIGHUP, self._on_signal)

    def start(self) -> ConfigReloader:
        """Start the reloading thread."""
        if self._thread is not None:
            raise RuntimeError("the reloader is already started")
        self._thread = threading.Thread(target=self._run, name="knee-node-reload", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.watch_interval_s)
            if self._stop.is_set():
                return
            self._wake.clear()
            mtime = self._stat()
            if not woken and mtime == self._mtime:
                continue
            self._mtime = mtime
            if self.path is None:
                log.warning("config reload asked, but the node runs without a config file")
                continue
            self.results.append(reload_settings(self.ctx, self.path))


def install_reload(ctx: NodeContext, path: Path | str | None) -> ConfigReloader:
    """SIGHUP reloads ``path`` into ``ctx`` (for ``knee-node serve``; main thread only)."""
    reloader = ConfigReloader(ctx, path).start()
    reloader.install_signal_handler()
    return reloader
