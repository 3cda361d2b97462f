"""``knee-node synth`` (DICOM + JSON ground truth) and ``knee-node bench-synth-dicom``."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from training.synth_dicom.encode import TRANSFER_SYNTAXES

_MIXED = "mixed"


def _pick(value: str, allowed: tuple[str, ...], option: str) -> str | None:
    """Check a CLI choice; ``mixed`` means "draw from the seed" (None)."""
    if value == _MIXED:
        return None
    if value not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed + (_MIXED,))}; got {value!r}",
                                 param_hint=option)
    return value


def synth(
    count: int = typer.Option(..., "--count", min=1, help="Number of instances to write."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    seed: int = typer.Option(
        0, "--seed", min=0,
        help="First seed; instance i uses seed S+i. Training uses seeds < 10,000,000; "
        "hold-out sets start at 900,000,000.",
    ),
    phase: str = typer.Option(_MIXED, "--phase", help="pre, post or mixed."),
    laterality: str = typer.Option(_MIXED, "--laterality", help="L, R or mixed."),
    both_knees_fraction: float | None = typer.Option(
        None, "--both-knees-fraction", min=0.0, max=1.0,
        help="Share of images showing both knees (default: the generator's own share).",
    ),
    transfer_syntax: str = typer.Option(
        "explicit", "--transfer-syntax",
        help=f"{', '.join(TRANSFER_SYNTAXES)} or mixed.",
    ),
    modality: str = typer.Option(_MIXED, "--modality", help="DX, CR or mixed."),
    dx_intent: str = typer.Option(
        "presentation", "--dx-intent",
        help="DX flavour: presentation, processing or mixed (one DX in five For Processing).",
    ),
    max_side: int | None = typer.Option(
        None, "--max-side", min=64, help="Longest image side in pixels (default: full size)."
    ),
    kind: str = typer.Option(
        "knee", "--kind",
        help="knee (AP knee, the default) or full-leg (bilateral standing AP, hip to ankle; "
        "OUT/full_leg_<seed>.dcm/.json, see docs/full_leg.md).",
    ),
) -> None:
    """Write COUNT synthetic AP knee radiographs as DICOM (DX/CR) with JSON ground truth.

    Files are OUT/knee_<10-digit seed>.dcm and .json, seed S+i (--seed 777: knee_0000000777.dcm).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if kind not in ("knee", "full-leg"):
        raise typer.BadParameter(f"must be knee or full-leg; got {kind!r}", param_hint="--kind")
    if kind == "full-leg":
        from training.synth_dicom.full_leg import full_leg_cli

        full_leg_cli(count, out, seed, phase, laterality, both_knees_fraction, transfer_syntax,
                     modality, dx_intent, max_side)
        return

    from training.synth_dicom.instance import make_instance, write_instance

    phase_v = _pick(phase, ("pre", "post"), "--phase")
    lat_v = _pick(laterality, ("L", "R"), "--laterality")
    syntax_v = _pick(transfer_syntax, tuple(TRANSFER_SYNTAXES), "--transfer-syntax")
    modality_v = _pick(modality, ("DX", "CR"), "--modality")
    intent_v = _pick(dx_intent, ("presentation", "processing"), "--dx-intent")
    if modality_v == "CR" and intent_v == "processing":
        raise typer.BadParameter("CR has no For Processing class", param_hint="--dx-intent")
    for_processing = None if intent_v is None else intent_v == "processing"
    import numpy as np

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task(f"synth -> {out}", total=count)
        for i in range(count):
            s = seed + i
            both: bool | None = None
            if both_knees_fraction is not None:
                both = bool(np.random.default_rng([s, 0xB07]).random() < both_knees_fraction)
            inst = make_instance(
                s, phase=phase_v, laterality=None if both else lat_v, both_knees=both,
                max_side=max_side,
                modality=modality_v,  # type: ignore[arg-type]
                for_processing=for_processing, syntax=syntax_v,
            )
            write_instance(inst, out)
            progress.advance(task)
    typer.echo(f"wrote {count} DICOM + JSON pairs to {out} (seeds {seed}..{seed + count - 1})")


def bench_synth_dicom(
    count: int = typer.Option(3, "--count", min=1, help="Full-size images per transfer syntax."),
    seed: int = typer.Option(900_000_000, "--seed", min=0, help="First seed."),
    max_side: int | None = typer.Option(None, "--max-side", min=64, help="Default: full size."),
    output: Path = typer.Option(Path("benchmarks/synth_dicom.json"), "--output"),
) -> None:
    """Seconds per full-size DICOM written, per transfer syntax (one core, no parallelism)."""
    from rich.console import Console
    from rich.table import Table

    from training.synth import GENERATOR_VERSION, synthesize
    from training.synth_dicom.dataset import to_dataset
    from training.synth_dicom.encode import write
    from training.synth_dicom.instance import resolve_choices

    synth_s: list[float] = []
    header_s: list[float] = []
    write_s: dict[str, list[float]] = {name: [] for name in TRANSFER_SYNTAXES}
    size_mb: dict[str, list[float]] = {name: [] for name in TRANSFER_SYNTAXES}
    sizes: list[list[int]] = []
    with tempfile.TemporaryDirectory(prefix="knee-bench-") as tmp:
        for i in range(count):
            s = seed + i
            t0 = time.perf_counter()
            r = synthesize(s, max_side=max_side)
            synth_s.append(time.perf_counter() - t0)
            sizes.append(list(r.pixels.shape))
            choice, _ = resolve_choices(s, modality="DX")
            for name in TRANSFER_SYNTAXES:
                t0 = time.perf_counter()
                ds = to_dataset(r, choice, GENERATOR_VERSION)
                t1 = time.perf_counter()
                path = Path(tmp) / f"{name}_{i}.dcm"
                write(ds, path, name)
                write_s[name].append(time.perf_counter() - t1)
                header_s.append(t1 - t0)
                size_mb[name].append(path.stat().st_size / 1e6)
    mean_synth = sum(synth_s) / len(synth_s)
    mean_header = sum(header_s) / len(header_s)
    rows: dict[str, Any] = {}
    for name, times in write_s.items():
        enc = sum(times) / len(times)
        rows[name] = {
            "uid": str(TRANSFER_SYNTAXES[name]),
            "encode_write_s": round(enc, 4),
            "total_s_per_file": round(mean_synth + mean_header + enc, 4),
            "file_mb": round(sum(size_mb[name]) / len(size_mb[name]), 3),
        }
    result = {
        "command": f"knee-node bench-synth-dicom --count {count} --seed {seed}"
        + ("" if max_side is None else f" --max-side {max_side}"),
        "generator_version": GENERATOR_VERSION,
        "images": count,
        "image_sizes": sizes,
        "synthesize_s": round(mean_synth, 4),
        "dataset_s": round(mean_header, 4),
        "transfer_syntaxes": rows,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    table = Table(title=f"seconds per DICOM written ({count} images, sizes {sizes})")
    for col in ("transfer syntax", "encode+write s", "total s / file", "file MB"):
        table.add_column(col)
    for name, row in rows.items():
        table.add_row(name, f"{row['encode_write_s']:.3f}", f"{row['total_s_per_file']:.3f}",
                      f"{row['file_mb']:.2f}")
    console = Console()
    console.print(f"synthesize: {mean_synth:.3f} s, dataset: {mean_header:.3f} s per image")
    console.print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Attach ``synth`` and ``bench-synth-dicom`` to the knee-node command line."""
    app.command("synth")(synth)
    app.command("bench-synth-dicom")(bench_synth_dicom)
