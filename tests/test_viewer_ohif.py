"""Our SR in a real web viewer: OHIF (prebuilt 3.13) on loopback with Orthanc's DICOMweb, in
headless Chromium.  A synthetic knee study goes through the node into Orthanc; OHIF opens its
SR, loads its measurements as editable Cobb angles, and the page shows the aTFA values and
draws the axes on the radiograph (checked in the DOM and in the screenshot's pixels)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from viewer.ohif_study import check_page, knee_study_in_orthanc, missing_reason, open_in_ohif  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]


def test_ohif_shows_the_knee_sr_as_angles_on_the_image(tmp_path: Path) -> None:
    with knee_study_in_orthanc(tmp_path) as study:
        assert study.modalities[0] in ("CR", "DX") and study.modalities[1:] == ["OT", "SR"]
        result = open_in_ohif(study, tmp_path / "ohif.png")
    problems = check_page(result, study.sr, tmp_path / "ohif.png")
    assert problems == [], (problems, result["console"][:20], result["failed"][:10],
                            result["proxy_errors"][:10])
