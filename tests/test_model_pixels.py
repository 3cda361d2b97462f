"""DICOM pixel handling: bit depth, MONOCHROME1, rescale, pixel spacing, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.errors import InputImageError
from inference.pixels import normalize_intensity, pixel_spacing, read_radiograph

RG3 = Path("/work/shared/testdata/RG3_J2KR.dcm")


def _dataset(
    values: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 12
) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = values.astype(np.uint16).tobytes()
    return ds


def _ramp(bits: int) -> np.ndarray:
    x = np.linspace(0, 2**bits - 1, 64)
    return np.tile(x, (48, 1)).astype(np.uint16)


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
def test_any_bit_depth_maps_to_unit_range(bits: int) -> None:
    px = read_radiograph(_dataset(_ramp(bits), bits=bits))
    assert px.image.dtype == np.float32
    assert px.image.min() == 0.0 and px.image.max() == 1.0
    assert px.image[0, -1] > px.image[0, 0]


def test_monochrome1_is_turned_around() -> None:
    m2 = read_radiograph(_dataset(_ramp(12))).image
    m1 = read_radiograph(_dataset(_ramp(12), photometric="MONOCHROME1")).image
    assert np.allclose(m1, 1.0 - m2, atol=1e-5)


def test_negative_rescale_slope_is_applied() -> None:
    ds = _dataset(_ramp(12))
    ds.RescaleSlope = -1
    ds.RescaleIntercept = 4095
    img = read_radiograph(ds).image
    assert img[0, 0] > img[0, -1]


def test_pixel_spacing_sources() -> None:
    ds = _dataset(_ramp(12))
    assert pixel_spacing(ds) == (None, None)
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.EstimatedRadiographicMagnificationFactor = 1.25
    spacing, source = pixel_spacing(ds)
    assert source == "ImagerPixelSpacing" and spacing == pytest.approx((0.16, 0.16))
    ds.PixelSpacing = [0.15, 0.14]
    assert pixel_spacing(ds) == ((0.15, 0.14), "PixelSpacing")


def test_unusable_pixel_data_raises_input_image_error() -> None:
    ds = _dataset(_ramp(12))
    del ds.PixelData
    with pytest.raises(InputImageError, match="no Pixel Data"):
        read_radiograph(ds)
    ds = _dataset(_ramp(12))
    ds.PixelData = ds.PixelData[:100]
    with pytest.raises(InputImageError, match="cannot be decoded"):
        read_radiograph(ds)
    ds = _dataset(_ramp(12))
    ds.PhotometricInterpretation = "RGB"
    with pytest.raises(InputImageError, match="grayscale"):
        read_radiograph(ds)


def test_constant_image_normalises_to_zero() -> None:
    assert not normalize_intensity(np.full((40, 40), 7.0)).any()
    with pytest.raises(ValueError, match="2-D"):
        normalize_intensity(np.zeros(5))


@pytest.mark.skipif(not RG3.exists(), reason="shared test radiograph RG3_J2KR.dcm not present")
def test_real_jpeg2000_monochrome1_radiograph_decodes() -> None:
    ds = pydicom.dcmread(RG3)
    px = read_radiograph(ds)
    assert px.image.shape == (ds.Rows, ds.Columns)
    assert px.pixel_spacing_mm is None
    assert px.photometric == "MONOCHROME1"
    assert px.image_laterality == "R"
    assert 0.0 <= float(px.image.min()) < float(px.image.max()) <= 1.0


def test_cr_spacing_from_source_distances() -> None:
    ds = _dataset(_ramp(12))
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.DistanceSourceToDetector = 1100
    ds.DistanceSourceToPatient = 1000
    spacing, source = pixel_spacing(ds)
    assert source == "ImagerPixelSpacing" and spacing == pytest.approx((0.2 / 1.1, 0.2 / 1.1))


def test_linear_rescale_fast_path_matches_pydicom_modality_lut() -> None:
    """The float32 rescale gives pydicom's values, without a float64 image."""
    import numpy as np
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut

    from inference.pixels import _modality_values

    ds = Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = 2.0, -100.0
    stored = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    got = _modality_values(stored, ds)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, apply_modality_lut(stored, ds), rtol=1e-6)
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
    assert _modality_values(stored, ds) is stored
