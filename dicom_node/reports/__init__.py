"""Results sent back to PACS: the aTFA Structured Report and the secondary-capture overlay.

Research use only: every object says it comes from an algorithm trained on synthetic
images, is not for diagnostic use, and needs review by a clinician.
"""

from __future__ import annotations

from dicom_node.reports._checks import ReportInputError, ReportTypeError
from dicom_node.reports.algorithm import AlgorithmIdentity
from dicom_node.reports.measurement_report import create_measurement_report
from dicom_node.reports.secondary_capture import create_overlay_image

__all__ = [
    "AlgorithmIdentity",
    "ReportInputError",
    "ReportTypeError",
    "create_measurement_report",
    "create_overlay_image",
]
