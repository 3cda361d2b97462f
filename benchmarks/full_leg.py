"""Full-leg studies (issue 16, item 4): end to end one study at a time, and ingest.

The files come from the project's full-leg generator, as ``knee-node synth --kind
full-leg`` writes them (:func:`inference.bench_full_leg.render_studies`, rendered in a
process of its own): bilateral standing long-leg DX instances (For Presentation), 16-bit,
Explicit VR Little Endian, by default exactly 2800 x 8100 px (``full_size``, about 45 MB
each).
``distinct`` studies are rendered and copied with fresh UIDs (:func:`benchmarks.data.
replicate`), as the knee files are.

* **end to end**: a ``knee-node serve`` on embedded defaults (its default routing sends
  these to the ``full-leg`` kind), one warm-up study, then ``studies`` one at a time;
  latency from the start of the C-STORE to the SR at the stand-in PACS, stages from the
  node's rows, and the full-leg limit figure (:mod:`benchmarks.limit`) measured right after.
* **ingest**: the same node / ``storescp`` / ``storescp +B`` alternation as the knee ingest
  section (:func:`benchmarks.ingest.run_ingest`), on ``files`` copies of these studies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.data import FileSet, replicate
from benchmarks.procs import BenchmarkError

#: First seed of the rendered studies (the full-leg bench-model's hold-out seeds).
FULL_LEG_SEED = 990_000_000
#: Name of the configuration in the results.
EMBEDDED = "embedded defaults (serve, in-process queue, SQLite)"


def render_sources(folder: Path, distinct: int, max_rows: int | None = None,
                   seed: int = FULL_LEG_SEED) -> list[Path]:
    """Render ``distinct`` full-leg studies into ``folder`` (full size unless ``max_rows``).

    Parameters
    ----------
    folder
        Where ``full_leg_<seed>.dcm`` (and its truth JSON) go.
    distinct
        Studies rendered.
    max_rows
        None: exactly 2800 x 8100 (the issue's size); else a preview of at most this many
        rows (tests).
    seed
        The first seed.
    """
    from inference.bench_full_leg import render_in_subprocess
    from inference.bench_kinds import BenchError

    if distinct < 1:
        raise ValueError(f"distinct must be >= 1, got {distinct}")
    if max_rows is not None and max_rows < 256:
        raise ValueError(f"max_rows must be >= 256 or None, got {max_rows}")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        studies = render_in_subprocess(folder, distinct, seed, max_rows=max_rows,
                                       full_size=max_rows is None, syntax="explicit",
                                       modality="DX")
    except BenchError as exc:
        raise BenchmarkError(f"rendering the full-leg studies: {exc}") from None
    return [Path(s["file"]) for s in studies]


def run_full_leg_e2e(sources: list[Path], work: Path, studies: int,
                     model_images: int = 2) -> dict[str, Any]:
    """Embedded defaults, one full-leg study at a time; figures and the limit figure.

    Parameters
    ----------
    sources
        Rendered full-leg studies (:func:`render_sources`).
    work
        The run's folder.
    studies
        Studies sent one at a time after the warm-up.
    model_images
        Studies of ``sources`` the limit's model part times.
    """
    from benchmarks.e2e import FULL_LEG_MODALITIES, load_datasets, measure_config
    from benchmarks.limit import measure_limit, ratio_to_limit

    if studies < 1:
        raise ValueError(f"studies must be >= 1, got {studies}")
    if not sources:
        raise ValueError("sources must name at least one full-leg study, got []")
    files = replicate(sources, work / "e2e_full_leg", 1 + studies, "leg")
    cfg = measure_config(EMBEDDED, work / "run_full_leg", load_datasets(files),
                         one_at_a_time=studies, burst=0,
                         keep_results=work / "full_leg_results", job_stages=None,
                         modalities=FULL_LEG_MODALITIES)
    results = [Path(p) for p in cfg["result_objects"].values()]
    limit = measure_limit("full-leg", files[1], results, work / "limit_full_leg",
                          model_files=sources[:max(1, model_images)])
    one = cfg["one_at_a_time"]
    return {
        "files": FileSet(tuple(files[1:]), len(sources), None).describe(),
        "configs": [cfg],
        "limit": limit,
        "p95_to_limit": ratio_to_limit(one["p95_s"], limit),
        "notes": ["latency = start of the study's C-STORE to the SR accepted by a pynetdicom "
                  "storage SCP (same process, same clock); the SC follows the SR",
                  "each study is one bilateral full-leg instance from the project's generator; "
                  "the node routes it to the full-leg kind by its default rules",
                  "one warm-up study (model load) is sent and answered first, not counted"],
    }


def run_full_leg_ingest(sources: list[Path], work: Path, files: int,
                        repeats: int) -> dict[str, Any]:
    """The ingest alternation (node, ``storescp``, ``storescp +B``) on full-leg copies."""
    from benchmarks.ingest import run_ingest

    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    paths = replicate(sources, work / "ingest_full_leg" / "studies", files, "leg")
    fs = FileSet(tuple(paths), min(len(sources), files), None)
    return run_ingest(fs, work / "ingest_full_leg_runs", repeats)
