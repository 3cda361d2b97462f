"""A ``knee-node serve`` process (and optional ``knee-node worker`` processes) for a run.

Each run gets its own folder with a ``config.yaml``: embedded defaults (SQLite in the
folder, local spool, CPU) plus what the run changes (queue, database, destination,
threads). The Prometheus endpoint is off so runs never compete for its port.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from benchmarks.procs import (
    free_port,
    knee_node_command,
    peak_rss_mb,
    spawn,
    stop,
    wait_port,
)
from dicom_node.settings import Settings


def node_config(data_dir: Path, port: int, **sections: dict[str, Any]) -> dict[str, Any]:
    """Embedded defaults with the run's folder, port, no metrics, plus ``sections``."""
    cfg: dict[str, Any] = {
        "node": {"port": port},
        "storage": {"data_dir": str(data_dir)},
        "metrics": {"enabled": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    Settings.model_validate(cfg)  # fail here, naming the key, rather than in the child
    return cfg


class NodeProcesses:
    """``knee-node serve`` plus ``workers`` ``knee-node worker`` processes.

    Parameters
    ----------
    folder
        Run folder (config, data, logs).
    workers
        Celery workers to start (0 on the in-process queue).
    sections
        Config sections merged over the embedded defaults.
    """

    def __init__(self, folder: Path, workers: int = 0, **sections: dict[str, Any]) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.folder = Path(folder)
        self.port = free_port()
        self.config = node_config(self.folder / "var", self.port, **sections)
        self.settings = Settings.model_validate(self.config)
        if workers and self.settings.queue.backend != "celery":
            raise ValueError("workers need queue.backend: celery")
        self.n_workers = workers
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, timeout_s: float = 90.0) -> NodeProcesses:
        """Start serve, wait until it listens (schema migrated), then start the workers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yaml"
        config.write_text(yaml.safe_dump(self.config))
        env = dict(os.environ, KNEE_NODE_CONFIG=str(config))
        cmd = knee_node_command()
        self.serve = spawn([*cmd, "serve"], self.folder / "serve.log", env)
        wait_port(self.port, timeout_s, self.serve)
        for i in range(self.n_workers):
            wenv = dict(env, KNEE_NODE_QUEUE__WORKER_NAME=f"bench{i}@%h")
            self.workers.append(
                spawn([*cmd, "worker", "--loglevel", "WARNING"],
                      self.folder / f"worker{i}.log", wenv)
            )
        return self

    def alive(self) -> bool:
        """True while every process runs."""
        procs = ([self.serve] if self.serve else []) + self.workers
        return all(p.poll() is None for p in procs)

    def peak_rss_mb(self) -> dict[str, float | None]:
        """Peak RSS (MiB) of serve and of each worker, read while they run."""
        out: dict[str, float | None] = {}
        if self.serve is not None:
            out["serve"] = peak_rss_mb(self.serve.pid)
        for i, w in enumerate(self.workers):
            out[f"worker{i}"] = peak_rss_mb(w.pid)
        return out

    def log_tail(self, chars: int = 2000) -> str:
        """The end of every log of the run (for error messages)."""
        parts = []
        for log in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the workers, then serve."""
        for w in self.workers:
            stop(w)
        if self.serve is not None:
            stop(self.serve)

    def __enter__(self) -> NodeProcesses:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
