"""Processes and services the benchmark starts: the node, dcmtk peers, Postgres, Redis.

Every process is started with :func:`spawn` and stopped with :func:`stop` (SIGTERM, then
SIGKILL after a grace period), by its own handle, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from dicom_node import peers
from dicom_node.errors import KneeNodeError
from dicom_node.peers import free_port  # noqa: F401 -- re-exported for the harness

#: Maintenance database used to create and drop the benchmark's Postgres databases.
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Redis database used as the benchmark's Celery broker (a queue name of its own per run).
BROKER_URL = "redis://127.0.0.1:6379/14"


class BenchmarkError(KneeNodeError):
    """A benchmark step could not run (a peer did not start, results did not arrive...)."""


def knee_node_command() -> list[str]:
    """The ``knee-node`` command of this interpreter (console script, else ``-m``)."""
    script = Path(sys.executable).with_name("knee-node")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "dicom_node.cli"]


def wait_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """:func:`dicom_node.peers.wait_port`, failing with BenchmarkError."""
    try:
        peers.wait_port(port, timeout_s, proc)
    except peers.PortError as exc:
        raise BenchmarkError(f"{proc.args!r}: {exc}" if proc is not None else str(exc)) from None


def spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``."""
    if not argv:
        raise ValueError("argv must not be empty")
    log.parent.mkdir(parents=True, exist_ok=True)
    fh: IO[bytes] = open(log, "ab")  # noqa: SIM115 -- closed by the child's exit
    try:
        return subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    finally:
        fh.close()


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> int:
    """SIGTERM ``proc`` (and its process group), SIGKILL after ``grace_s``; its exit code."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return int(proc.returncode)


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size (``VmHWM``) of a live process in MiB; None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def tool_path(name: str) -> str:
    """Absolute path of a command-line tool, or :class:`BenchmarkError` naming its package."""
    path = shutil.which(name)
    if path is None:
        raise BenchmarkError(f"{name} is not installed (Debian package dcmtk)")
    return path


def redis_reachable(url: str = BROKER_URL) -> bool:
    """True if Redis answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


def purge_queue(url: str, queue_name: str) -> int:
    """Delete the Redis keys of the Celery queue ``queue_name``; number of tasks dropped."""
    import redis

    r = redis.Redis.from_url(url, socket_timeout=5)
    dropped = int(r.llen(queue_name))
    r.delete(queue_name)
    for key in r.scan_iter(match=f"{queue_name}*"):
        r.delete(key)
    return dropped


def unique_name(prefix: str) -> str:
    """``prefix`` plus a short random suffix (queue and database names)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str | None]:
    """A fresh Postgres database (its URL), dropped afterwards; None if unreachable."""
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = unique_name("knee_node_bench")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]
