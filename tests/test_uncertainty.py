"""The aTFA interval (inference.uncertainty) and the agreement figures (training.robustness)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from inference import landmarks as lm
from inference.uncertainty import (
    FLAG_ON_INTERVAL,
    INTERVAL_FLOOR_DEG,
    MAX_HALF_WIDTH_DEG,
    AngleUncertainty,
    assess_angles,
    combine,
    frame_sd,
    spread_sd,
)
from training.robustness import agreement, auroc, calibrate, deming, ols


def _knee() -> np.ndarray:
    from training.independent.truth import draw

    return draw(5, phase="pre", max_side=400).landmarks


def test_frame_sd_is_zero_for_identical_frames_and_grows_with_jitter() -> None:
    pts = _knee()
    same = np.stack([pts] * 5)
    assert frame_sd(same) == {"FTS": 0.0, "FNTS": 0.0}
    rng = np.random.default_rng(0)
    small = same + rng.normal(0, 0.5, same.shape)
    large = same + rng.normal(0, 3.0, same.shape)
    assert 0 < frame_sd(small)["FTS"] < frame_sd(large)["FTS"]


def test_spread_sd_scales_with_the_spread() -> None:
    pts = _knee()
    a = spread_sd(pts, np.full(len(pts), 2.0))
    b = spread_sd(pts, np.full(len(pts), 4.0))
    assert b["FTS"] == pytest.approx(2 * a["FTS"])
    assert b["FNTS"] == pytest.approx(2 * a["FNTS"])


def test_wide_interval_flags() -> None:
    pts = _knee()
    narrow = assess_angles(pts, np.full(len(pts), 0.1), None)
    raw = assess_angles(pts, np.full(len(pts), 60.0), None)
    wide = AngleUncertainty(raw.frame_sd, raw.spread_sd,
                            combine(raw.frame_sd, raw.spread_sd, scale=2.0, weight=1.0, floor=0.0))
    assert raw.half_width["FTS"] >= INTERVAL_FLOOR_DEG  # the calibrated floor holds
    assert narrow.reasons(MAX_HALF_WIDTH_DEG) == []
    assert wide.half_width["FTS"] > MAX_HALF_WIDTH_DEG and wide.reasons(MAX_HALF_WIDTH_DEG)
    if not FLAG_ON_INTERVAL:
        assert wide.reasons() == [], "interval flags are off"
    else:
        assert wide.reasons() == wide.reasons(MAX_HALF_WIDTH_DEG)
    with pytest.raises(ValueError, match="scale"):
        combine({"FTS": 1, "FNTS": 1}, {"FTS": 1, "FNTS": 1}, scale=-1.0)


def test_regressions_recover_a_known_line() -> None:
    x = np.linspace(-15, 20, 50)
    y = 0.8 * x + 1.0
    assert ols(x, y) == pytest.approx((0.8, 1.0))
    assert deming(x, y) == pytest.approx((0.8, 1.0))


def test_auroc_extremes() -> None:
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert auroc([1, 1, 1, 1], [False, True, False, True]) == 0.5


def _result(true: float, pred: float, hw: float, flagged: bool = False) -> SimpleNamespace:
    return SimpleNamespace(atfa_true={"FTS": true, "FNTS": true},
                           atfa_pred={"FTS": pred, "FNTS": pred}, flagged=flagged,
                           atfa_ci95={"FTS": hw, "FNTS": hw},
                           atfa_sd={"frames": {"FTS": hw / 2, "FNTS": hw / 2},
                                    "spread": {"FTS": 0.0, "FNTS": 0.0}})


def test_agreement_counts_coverage_and_unflagged_errors() -> None:
    res = [_result(t, 0.8 * t, 1.0) for t in np.linspace(-10, 10, 21)]
    res.append(_result(5.0, 9.0, 0.5, flagged=False))
    a = agreement(res)["FTS"]
    assert a["unflagged_over_2_5_deg"] == 1
    assert a["max_unflagged_error_deg"] == pytest.approx(4.0)
    assert 0 < a["interval_coverage_pct"] < 100
    assert a["ols_slope"] < 0.95


def test_calibrate_reaches_the_target_coverage() -> None:
    rng = np.random.default_rng(1)
    recs = []
    for _ in range(400):
        s = float(rng.uniform(0.1, 1.0))
        e = float(rng.normal(0, s))
        r = _result(0.0, e, 0.0)
        r.atfa_sd = {"frames": {"FTS": s, "FNTS": s}, "spread": {"FTS": 1.0, "FNTS": 1.0}}
        recs.append(vars(r))
    cal = calibrate(recs)
    assert cal["chosen"]["weight"] == 0.0  # the spread term carries no information here
    assert 1.6 < cal["chosen"]["scale"] < 2.4
    assert lm.N_PRE_OP == 113


def test_calibrate_picks_a_floor_when_the_spread_says_nothing() -> None:
    rng = np.random.default_rng(2)
    recs = []
    for _ in range(400):
        r = _result(0.0, float(rng.normal(0, 0.5)), 0.0)
        s = float(rng.uniform(1.0, 10.0))  # wide and unrelated to the error
        r.atfa_sd = {"frames": {"FTS": s, "FNTS": s}, "spread": {"FTS": s, "FNTS": s}}
        recs.append(vars(r))
    cal = calibrate(recs)
    chosen = cal["chosen"]
    assert 0.8 < chosen["floor_deg"] <= 1.2  # about 1.96 * 0.5
    assert chosen["scale"] < 0.05
    assert 94.0 <= chosen["coverage_pct"] <= 96.5
    assert cal["scale_only"] and all(r["mean_half_width_deg"] > chosen["mean_half_width_deg"]
                                     for r in cal["scale_only"])


def test_combine_floor_and_constant_interval() -> None:
    f, s = {"FTS": 3.0, "FNTS": 0.0}, {"FTS": 0.0, "FNTS": 4.0}
    hw = combine(f, s, scale=1.0, weight=1.0, floor=4.0)
    assert hw == pytest.approx({"FTS": 5.0, "FNTS": np.hypot(4.0, 4.0)})
    assert combine(f, s, scale=0.0, weight=1.0, floor=1.5) == {"FTS": 1.5, "FNTS": 1.5}
    with pytest.raises(ValueError, match="floor"):
        combine(f, s, scale=1.0, weight=1.0, floor=-1.0)


def test_with_interval_flags_only_when_interval_flags_are_on() -> None:
    from training.robustness import with_interval

    rec = {"atfa_sd": {"frames": {"FTS": 3.0, "FNTS": 3.0}, "spread": {"FTS": 0.0, "FNTS": 0.0}},
           "flag_reasons": ["no knee found (x)"], "flagged": True}
    ok = {**rec, "flag_reasons": [], "flagged": False}
    on = with_interval(ok, scale=2.0, weight=1.0, limit=2.0, flag_on=True, floor=0.0)
    off = with_interval(ok, scale=2.0, weight=1.0, limit=2.0, flag_on=False, floor=0.0)
    assert on["flagged"] and all(r.startswith("aTFA ") for r in on["flag_reasons"])
    assert not off["flagged"] and off["atfa_ci95"]["FTS"] == pytest.approx(6.0)
    kept = with_interval(rec, scale=2.0, weight=1.0, limit=2.0, flag_on=False, floor=0.0)
    assert kept["flagged"] and kept["flag_reasons"] == ("no knee found (x)",)
