"""``knee-node`` sub-commands of the DICOM node.

serve, worker, db upgrade/current, status, resend, check-config, demo, predict.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the node's commands to the ``knee-node`` application."""
    from dicom_node.commands import admin, demo, predict, run

    run.register(app)
    admin.register(app)
    demo.register(app)
    predict.register(app)
