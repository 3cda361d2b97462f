"""``GET /status`` on the metrics port: a read-only HTML page of the node's recent jobs.

For the admin and the radiographer: the last :data:`JOBS_SHOWN` jobs with their kind,
state, headline values, verdict and deliveries (state and last error per destination),
the queue depth, the health checks of ``/healthz`` and the model versions of recent jobs.
It shows what ``knee-node status`` shows by default and reuses its code: the calling AE,
a short hash of the Study Instance UID, the accession number only when
``status.show_accession_number`` is set; never a patient's name or ID. Rendered by Jinja2
with autoescaping (every value is escaped); the page refreshes itself every
:data:`REFRESH_S` seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, select_autoescape

from dicom_node.db.states import DeliveryState

if TYPE_CHECKING:
    from dicom_node.context import NodeContext

#: jobs listed on the page
JOBS_SHOWN = 50
#: seconds between automatic reloads of the page
REFRESH_S = 10

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>knee-node status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.ok { color: #176b26; } .bad { color: #b00020; font-weight: bold; }
.state-failed, .state-flagged { background: #fde8e8; }
ul.deliveries { margin: 0; padding-left: 1em; }
.summary span { margin-right: 2em; }
</style>
</head>
<body>
<h1>knee-node status</h1>
<p class="summary">
<span>generated {{ generated }}</span>
<span>queue depth: <b id="queue-depth">{{ queue_depth }}</b></span>
{% for name, check in checks.items() %}
<span>{{ name }}: <b class="{{ 'ok' if check == 'ok' else 'bad' }}">{{ check }}</b></span>
{% endfor %}
</p>
<p>models: {% for m in models %}<code>{{ m }}</code>{% if not loop.last %}, {% endif %}
{% else %}none yet{% endfor %}</p>
<h2>recent jobs (last {{ limit }})</h2>
<table id="jobs">
<thead><tr><th>job</th><th>finished</th><th>state</th><th>caller</th><th>study</th>
{% if show_acc %}<th>accession</th>{% endif %}
<th>kind</th><th>results</th><th>verdict</th><th>model</th><th>deliveries</th><th>error</th>
</tr></thead>
<tbody>
{% for j in jobs %}
<tr class="job state-{{ j.state }}" id="job-{{ j.id }}">
<td>{{ j.id }}</td><td>{{ j.finished }}</td><td>{{ j.state }}</td><td>{{ j.caller }}</td>
<td><code>{{ j.study }}</code></td>
{% if show_acc %}<td>{{ j.accession }}</td>{% endif %}
<td>{{ j.kind }}</td><td>{{ j.results }}</td><td>{{ j.verdict }}</td><td>{{ j.model }}</td>
<td><ul class="deliveries">
{% for d in j.deliveries %}<li>{{ d.destination }} ({{ d.objects }}): {{ d.state }}
({{ d.attempts }} attempt(s))
{% if d.error %}<br><span class="bad">{{ d.error }}</span>{% endif %}</li>
{% else %}<li>none</li>{% endfor %}
</ul></td>
<td>{{ j.error }}</td>
</tr>
{% else %}
<tr><td colspan="12">no jobs yet</td></tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"""

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_PAGE = _ENV.from_string(_TEMPLATE)


def _job(j: Any, show_acc: bool) -> dict[str, Any]:
    from dicom_node.commands.status import (
        accession,
        job_error,
        results_text,
        study_tag,
        verdict_text,
    )

    return {
        "id": j.id,
        "finished": j.finished_at.strftime("%Y-%m-%d %H:%M:%S") if j.finished_at else "",
        "state": j.state,
        "caller": j.instance.calling_ae_title,
        "study": study_tag(j.instance.study_instance_uid),
        "accession": accession(j.output_path("SR")) if show_acc else "",
        "kind": j.kind or "",
        "results": results_text(j),
        "verdict": verdict_text(j),
        "model": f"{j.model_name or ''} {j.model_version or ''}".strip(),
        "deliveries": [
            {
                "destination": d.destination,
                "objects": ", ".join(d.object_kinds or ["all"]),
                "state": d.state,
                "attempts": d.attempts,
                "error": (d.last_error or "") if d.state != DeliveryState.DELIVERED else "",
            }
            for d in sorted(j.deliveries, key=lambda d: (d.destination, d.id))
        ],
        "error": job_error(j),
    }


def render_status(ctx: NodeContext, limit: int = JOBS_SHOWN) -> tuple[int, bytes]:
    """The page's HTTP status and HTML (503 with the checks if the database fails)."""
    from sqlalchemy.exc import SQLAlchemyError

    from dicom_node.commands.status import recent_jobs
    from dicom_node.metrics import health, queue_depth

    show_acc = bool(ctx.settings.status.show_accession_number)
    ok, checks = health(ctx)
    jobs: list[dict[str, Any]] = []
    if checks.get("database") == "ok":
        try:
            with ctx.db.session() as s:
                jobs = [_job(j, show_acc) for j in recent_jobs(s, limit)]
        except SQLAlchemyError as exc:
            ok, checks["database"] = False, f"unreachable: {type(exc).__name__}"
    depth = queue_depth(ctx)
    models = sorted({j["model"] for j in jobs if j["model"]})
    html = _PAGE.render(
        refresh=REFRESH_S,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        queue_depth="unknown" if depth is None else depth,
        checks=checks,
        models=models,
        limit=limit,
        show_acc=show_acc,
        jobs=jobs,
    )
    return (200 if ok else 503), html.encode("utf-8")
