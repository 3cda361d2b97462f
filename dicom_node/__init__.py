"""knee-node: a DICOM node that measures knee alignment on AP knee radiographs.

Research use only. Not a medical device. Models are trained on synthetic radiographs.
"""

__version__ = "0.1.0"


# pydicom validates values as it reads them and logs (at WARNING) each invalid one *with
# the value*: a malformed birth date or name would reach the log. The node checks the
# attributes it copies itself (dicom_node.reports.source_attributes), naming the attribute
# only, so pydicom's validation on reading is off in every node process.
from pydicom import config as _pydicom_config  # noqa: E402

_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
