"""The benchmark's DICOM files: a few distinct synthetic DX radiographs, replicated.

Rendering a full-size synthetic radiograph takes about a second, so ``distinct`` images
are rendered (``training.synth_dicom``: DX For Presentation, Explicit VR Little Endian,
one knee) and copied with fresh Study, Series and SOP Instance UIDs up to ``count``
files. Transfer speed does not depend on the pixel values; every copy is its own study to
the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid


@dataclass(frozen=True)
class FileSet:
    """Files written for one benchmark section."""

    paths: tuple[Path, ...]
    distinct: int
    max_side: int | None

    @property
    def total_bytes(self) -> int:
        """Sum of the file sizes."""
        return sum(p.stat().st_size for p in self.paths)

    def describe(self) -> dict[str, object]:
        """JSON-ready description."""
        sizes = [p.stat().st_size for p in self.paths]
        first = dcmread(self.paths[0], stop_before_pixels=True)
        return {
            "files": len(sizes),
            "distinct_images": self.distinct,
            "max_side": self.max_side,
            "mean_file_mb": round(sum(sizes) / len(sizes) / 1e6, 3),
            "total_mb": round(sum(sizes) / 1e6, 1),
            "example_rows_columns": [int(first.Rows), int(first.Columns)],
            "sop_class": first.SOPClassUID.name,
            "transfer_syntax": first.file_meta.TransferSyntaxUID.name,
        }


def render_distinct(folder: Path, distinct: int, max_side: int | None, seed: int) -> list[Path]:
    """Render ``distinct`` synthetic single-knee DX instances into ``folder``."""
    from training.synth_dicom.instance import make_instance

    if distinct < 1:
        raise ValueError(f"distinct must be >= 1, got {distinct}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(distinct):
        inst = make_instance(
            seed + i, both_knees=False, max_side=max_side, modality="DX",
            for_processing=False, syntax="explicit",
        )
        path = folder / f"source_{i:03d}.dcm"
        inst.dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def replicate(sources: list[Path], folder: Path, count: int, prefix: str) -> list[Path]:
    """``count`` copies of ``sources`` (round robin), each a new study with new UIDs."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not sources:
        raise ValueError("sources must not be empty")
    folder.mkdir(parents=True, exist_ok=True)
    datasets = [dcmread(p) for p in sources]
    out = []
    for i in range(count):
        ds = datasets[i % len(datasets)]
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.AccessionNumber = f"B{i:06d}"
        path = folder / f"{prefix}_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def make_file_set(
    folder: Path, count: int, distinct: int, max_side: int | None, seed: int = 960_000_000
) -> FileSet:
    """Render ``distinct`` images into ``folder/sources`` and write ``count`` studies."""
    distinct = min(distinct, count)
    sources = render_distinct(folder / "sources", distinct, max_side, seed)
    paths = replicate(sources, folder / "studies", count, "study")
    return FileSet(tuple(paths), distinct, max_side)
