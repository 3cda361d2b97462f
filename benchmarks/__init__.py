"""``knee-node bench``: ingest, inference, end to end (knee and full-leg), scaling, memory.

Writes ``benchmarks/results.json`` and ``docs/benchmarks.md`` (generated from the JSON)
and prints a table. Modules: :mod:`.data` (synthetic files), :mod:`.procs` (processes,
Postgres, Redis), :mod:`.nodes` (serve/worker processes), :mod:`.ingest`,
:mod:`.inference`, :mod:`.e2e`, :mod:`.full_leg` (full-leg end to end and ingest),
:mod:`.limit` (the limit figure of each kind), :mod:`.targets` (issue 16's lines),
:mod:`.profile`, :mod:`.runner`, :mod:`.report`, :mod:`.gaps`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer


def bench(
    sections: str = typer.Option(
        "ingest,e2e,inference,scaling,memory,e2e-full-leg,ingest-full-leg",
        help="Comma-separated: ingest, inference, e2e, scaling, memory, e2e-full-leg, "
             "ingest-full-leg.",
    ),
    ingest_files: int = typer.Option(100, min=1, help="Files per ingest push."),
    distinct: int = typer.Option(6, min=1, help="Distinct synthetic images rendered."),
    max_side: int | None = typer.Option(None, min=64, help="Longest side (default: full size)."),
    repeats: int = typer.Option(3, min=1, help="Ingest pushes per receiver."),
    one_at_a_time: int = typer.Option(10, min=0, help="Studies sent one by one (end to end)."),
    burst: int = typer.Option(20, min=0, help="Studies pushed at once (end to end, scaling)."),
    model_images: int = typer.Option(5, min=1, help="Images per bench-model row (shipped)."),
    paper_images: int = typer.Option(1, min=0, help="Images per paper-width row (0: skip)."),
    limit_model_images: int = typer.Option(3, min=1, help="Images (knee) or studies "
                                           "(full-leg) the limit figure's model part times."),
    full_leg_studies: int = typer.Option(6, min=1, help="Full-leg studies sent one by one "
                                         "(full-leg end to end)."),
    full_leg_distinct: int = typer.Option(3, min=1, help="Distinct full-leg studies "
                                          "rendered (2800 x 8100, about 45 MB each)."),
    full_leg_ingest_files: int = typer.Option(6, min=1, help="Files per full-leg ingest "
                                              "push."),
    full_leg_max_rows: int | None = typer.Option(None, min=256, help="Full-leg preview "
                                                 "size (default: full size)."),
    profile: bool = typer.Option(True, help="Profile the listener when ingest misses."),
    out: Path = typer.Option(Path("benchmarks/results.json"), help="Results JSON."),
    doc: Path | None = typer.Option(Path("docs/benchmarks.md"), help="Generated Markdown."),
    work_dir: Path | None = typer.Option(None, help="Keep the run's files here (default: "
                                         "a temporary folder, deleted)."),
    rewrite_doc: bool = typer.Option(False, help="Measure nothing: regenerate the document "
                                     "and the table from the existing results JSON (its "
                                     "targets judged again from its figures; the JSON is "
                                     "not changed)."),
) -> None:
    """Benchmark the node against dcmtk storescp, the model, end to end and scaling."""
    from rich.console import Console

    from benchmarks.gaps import gap_texts
    from benchmarks.procs import BenchmarkError
    from benchmarks.report import markdown, print_table
    from benchmarks.runner import BenchOptions, run_all
    from benchmarks.targets import targets

    console = Console()
    if rewrite_doc:
        if not out.is_file():
            raise typer.BadParameter(f"{out} does not exist", param_hint="--out")
        res = json.loads(out.read_text(encoding="utf-8"))
        res["targets"] = targets(res)  # judged by today's lines, from the figures
        if doc is not None:
            doc.write_text(markdown(res, gap_texts(res)), encoding="utf-8")
        print_table(res, console)
        return
    try:
        opts = BenchOptions(
            sections=tuple(s.strip() for s in sections.split(",") if s.strip()),
            ingest_files=ingest_files, distinct=distinct, max_side=max_side, repeats=repeats,
            one_at_a_time=one_at_a_time, burst=burst, model_images=model_images,
            paper_images=paper_images, limit_model_images=limit_model_images,
            full_leg_studies=full_leg_studies, full_leg_distinct=full_leg_distinct,
            full_leg_ingest_files=full_leg_ingest_files, full_leg_max_rows=full_leg_max_rows,
            profile=profile,
            command="knee-node " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        res = run_all(opts, work_dir, progress=lambda m: console.log(m))
    except BenchmarkError as exc:
        console.print(f"[red]benchmark failed:[/red] {exc}")
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    if doc is not None:
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(markdown(res, gap_texts(res)), encoding="utf-8")
    print_table(res, console)
    console.print(f"wrote {out}" + ("" if doc is None else f" and {doc}"))


def register(app: typer.Typer) -> None:
    """Attach ``knee-node bench`` and ``knee-node bench reports``."""
    from benchmarks.reports import bench_reports

    app.command("bench")(bench)
    app.command("bench-reports")(bench_reports)
