"""knee-node: a DICOM node that measures knee alignment on AP knee radiographs.

Research use only. Not a medical device. Models are trained on synthetic radiographs.
"""

__version__ = "0.1.0"
