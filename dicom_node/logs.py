"""Logging set-up of the node processes.

The node's own INFO messages name instances by a short SHA-256 of the SOP Instance UID
and never carry patient name, ID or birth date. pynetdicom's own loggers are kept at
WARNING unless the node runs at DEBUG, since its debug output dumps datasets; so is
highdicom's, whose INFO lines name the source instance by its full UID.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``logging.format: json``), for log shippers.

    Keys: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``process``,
    ``thread``, and ``exception`` (the traceback) when there is one. The message is the
    same text as in the plain format, so it carries no more data than the text logs.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` ("DEBUG", "INFO", "WARNING" or "ERROR"), as plain text
    lines (``fmt="text"``) or JSON lines (``fmt="json"``)."""
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"fmt must be 'text' or 'json', got {fmt!r}")
    logging.basicConfig(level=level, format=FORMAT)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # ours; leave pytest's and others' alone
            handler.setFormatter(formatter)
    logging.getLogger().setLevel(level)
    quiet = "DEBUG" if level == "DEBUG" else "WARNING"
    for name in ("pynetdicom", "sqlalchemy.engine", "alembic", "highdicom"):  # highdicom: UIDs
        logging.getLogger(name).setLevel(quiet)
