"""The result objects the node sends for one measured image: the SR and the SC.

One function, :func:`make_results`, used by the node's measurement task
(:func:`dicom_node.pipeline.measure_instance`) and by ``knee-node predict --out``, so the
files ``predict`` writes are the ones the node would send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from dicom_node.settings import Settings
from inference.measurement import KneeMeasurement


@dataclass(frozen=True)
class Results:
    """The SR and the SC of one image, in memory."""

    sr: Dataset
    sc: Dataset

    def save(self, folder: Path) -> tuple[Path, Path]:
        """Write ``folder/sr.dcm`` and ``folder/sc.dcm`` (plain writes; the node's own
        writes are durable, see ``dicom_node.spool.write_durably``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sr_path, sc_path = folder / "sr.dcm", folder / "sc.dcm"
        self.sr.save_as(sr_path, enforce_file_format=True)
        self.sc.save_as(sc_path, enforce_file_format=True)
        return sr_path, sc_path


def make_results(
    settings: Settings, source: Dataset, measurements: Sequence[KneeMeasurement]
) -> Results:
    """The SR (TID 1500) and the SC overlay of ``source``, with the ``reports`` settings.

    Parameters
    ----------
    settings
        The node's settings (series numbers, institution, device observer, SC encoding).
    source
        The measured image.
    measurements
        One record per knee, as the measurer returned them.
    """
    from dicom_node.reports import create_measurement_report, create_overlay_image

    rs = settings.reports
    sr = create_measurement_report(
        source,
        measurements,
        series_number=rs.sr_series_number,
        institution_name=rs.institution_name,
        device_observer_uid=settings.device_observer_uid,
        device_observer_name=rs.device_observer_name,
    )
    sc = create_overlay_image(
        source, measurements, series_number=rs.sc_series_number, encoding=rs.sc_transfer_syntax
    )
    return Results(sr, sc)
