"""The normal operating point: one offset on Diagnosis "normal appearance", chosen on validation
frames for Youden's J or for a lesion sensitivity, stored in the bundle's offsets."""
from __future__ import annotations

import numpy as np
import pytest

from usclip_sdk import calibration as cal, taxonomy

DX = taxonomy.dimension("Diagnosis").values
COL = DX.index(taxonomy.NORMAL)


def _diagnosis_frames(n: int = 400, over_call: float = 1.5, seed: int = 0):
    """Calibrated-looking Diagnosis logits whose lesion classes are over-called by ``over_call``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(DX), n)
    z = rng.normal(0, 1.0, (n, len(DX))) + 2.5 * np.eye(len(DX))[y]
    z[:, [j for j in range(len(DX)) if j != COL]] += over_call
    return z, y == COL


def _rates(z, normal, d):
    zz = z.copy()
    zz[:, COL] += d
    called_normal = zz.argmax(axis=1) == COL
    return np.mean(~called_normal[normal]), np.mean(called_normal[~normal])


def test_youden_offset_beats_every_other_offset_and_undoes_an_over_call():
    z, normal = _diagnosis_frames()
    d, fig = cal.fit_normal_offset(z, normal, COL)
    best = 1 - sum(_rates(z, normal, d))
    assert all(best >= 1 - sum(_rates(z, normal, x)) - 1e-12 for x in np.linspace(-6, 6, 241))
    assert d > 0.5  # the lesions were over-called, so normal is moved up
    fa0, miss0 = _rates(z, normal, 0.0)
    assert fig["normal_called_lesion_before"] == pytest.approx(fa0, abs=1e-4)
    assert fig["normal_called_lesion_after"] < fig["normal_called_lesion_before"]
    assert fig["fitted"] and fig["rule"] == "youden"


def test_sensitivity_rule_keeps_the_lesions_it_promises():
    z, normal = _diagnosis_frames(over_call=0.0, seed=3)
    for target in (0.9, 0.97, 0.99):
        d, fig = cal.fit_normal_offset(z, normal, COL, min_sensitivity=target)
        fa, miss = _rates(z, normal, d)
        assert 1 - miss >= target
        margin = z[:, COL] - np.delete(z, COL, axis=1).max(axis=1)
        nxt = np.sort(-margin[-margin >= d])[0] + 1e-6  # the next offset that calls one more frame normal
        assert 1 - _rates(z, normal, nxt)[1] < target  # so d is the largest offset that keeps the target
        assert fig["rule"] == f"lesion sensitivity >= {target}"


def test_too_few_normal_frames_fit_nothing():
    z, normal = _diagnosis_frames(n=60)
    normal[:] = False
    normal[:3] = True
    assert cal.fit_normal_offset(z, normal, COL)[0] == 0.0


def test_fit_calibration_stores_the_offset_on_the_normal_row_only():
    rng = np.random.default_rng(5)
    n, k = 500, len(DX)
    y = rng.integers(0, k, n)
    names = [("Diagnosis", v) for v in DX]
    emb = np.eye(k)[y] + 0.45 * rng.normal(size=(n, k))
    emb[:, [j for j in range(k) if j != COL]] += 0.25  # the lesion anchors over-called
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    tags = [{"Diagnosis": [DX[j]]} for j in y]
    classes = np.eye(k, dtype=np.float32)
    plain, _, fig0 = cal.fit_calibration(emb, tags, classes, names, 10.0, normal_point="none")
    spec, _, fig = cal.fit_calibration(emb, tags, classes, names, 10.0)
    point = fig["Diagnosis"]["normal_operating_point"]
    shift = np.subtract(spec.offsets["Diagnosis"], plain.offsets["Diagnosis"])
    assert shift[COL] == pytest.approx(point["offset"], abs=1e-4) and point["offset"] != 0
    assert np.allclose(np.delete(shift, COL), 0, atol=1e-6)
    assert "normal_operating_point" not in fig0["Diagnosis"]
    with pytest.raises(ValueError, match="normal_point"):
        cal.fit_calibration(emb, tags, classes, names, 10.0, normal_point="roc")
    with pytest.raises(ValueError, match="lesion_sensitivity"):
        cal.fit_calibration(emb, tags, classes, names, 10.0, normal_point="sensitivity", lesion_sensitivity=0)
