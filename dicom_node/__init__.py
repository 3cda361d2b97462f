"""knee-node: a DICOM node that measures knee alignment on AP knee radiographs.

Research use only. Not a medical device. Models are trained on synthetic radiographs.
"""

import os as _os

__version__ = "0.1.0"

# torch's OpenMP threads spin-wait between parallel regions by default. In a node process the
# listener, the reports and other work share the cores with them, and two spinning threads
# then made a full-leg study 18 times slower (5.36 s against 0.29 s, docs/benchmarks.md).
# Every node process therefore waits passively unless the admin set OMP_WAIT_POLICY; it has to
# be set before torch loads its OpenMP runtime, so it is set here, before anything imports it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# pydicom validates values as it reads them and logs (at WARNING) each invalid one *with
# the value*: a malformed birth date or name would reach the log. The node checks the
# attributes it copies itself (dicom_node.reports.source_attributes), naming the attribute
# only, so pydicom's validation on reading is off in every node process.
from pydicom import config as _pydicom_config  # noqa: E402

_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
