"""Fuzzing of the native ops (preprocess, similarity, the quality gate's figures) against their
numpy references.

Valid random calls (shapes, channel counts, dtypes, strided / negative-stride / broadcast /
Fortran / read-only views, rois, masks, output buffers, groups, exact ties, extreme
magnitudes) must agree with the float64 reference within float32 rounding (bounds in
tests/fuzz_cases.py) and leave their inputs untouched. Invalid calls (one argument broken)
must raise ValueError/TypeError or a usclip_sdk.errors type, never anything else, never crash.
The gate (``gate_figures``) is compared with gate_reference as tests/native/test_ops_gate.py
compares it, and its invalid calls must raise the documented TypeError/ValueError naming the
broken argument, from the Python face and from the native entry.

CI runs USCLIP_FUZZ_EXAMPLES (default 150) derandomized examples per test; the long run of
>= 100k seeded cases is bench/fuzz_ops.py. The sanitizer build (.ci/sanitize.sh) runs this
file too.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_cases import (GATE_EXACT, GATE_MOMENT_RTOL, GATE_MOMENTS, HypothesisDraw, NumpyDraw,
                        bad_gate_case, bad_preprocess_case, bad_similarity_case, check_gate,
                        check_gate_rejected, check_preprocess, check_rejected, check_similarity,
                        gate_case, preprocess_case, run_seeded_case, similarity_case)
from usclip_sdk.ops.gate import gate_figures
from usclip_sdk.ops.preprocess import preprocess
from usclip_sdk.ops.similarity import similarity

EXAMPLES = int(os.environ.get("USCLIP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.data())
def test_preprocess_matches_reference(data):
    check_preprocess(preprocess_case(HypothesisDraw(data)))


@FUZZ
@given(st.data())
def test_preprocess_rejects_invalid_with_typed_errors(data):
    what, kw = bad_preprocess_case(HypothesisDraw(data))
    check_rejected(preprocess, what, kw)


@FUZZ
@given(st.data())
def test_similarity_matches_reference(data):
    check_similarity(similarity_case(HypothesisDraw(data)))


@FUZZ
@given(st.data())
def test_similarity_rejects_invalid_with_typed_errors(data):
    what, kw = bad_similarity_case(HypothesisDraw(data))
    check_rejected(similarity, what, kw)


@FUZZ
@given(st.data())
def test_gate_matches_reference(data):
    check_gate(gate_case(HypothesisDraw(data)))


@FUZZ
@given(st.data())
def test_gate_rejects_invalid_naming_the_argument(data):
    check_gate_rejected(*bad_gate_case(HypothesisDraw(data)))


def test_gate_tolerances_are_the_kernel_tests():
    from test_ops_gate import EXACT, MOMENT_RTOL, MOMENTS

    assert (GATE_EXACT, GATE_MOMENTS, GATE_MOMENT_RTOL) == (EXACT, MOMENTS, MOMENT_RTOL)


def _gate_frame(shape, seed=0):
    """Blocky speckle (correlated, patches kept) in any shape, grey replicated into channels."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    g = rng.uniform(20, 235, (-(-h // 4), -(-w // 4)))[np.arange(h) // 4][:, np.arange(w) // 4]
    g = np.clip(g * rng.rayleigh(0.8, (h, w)), 0, 255).astype(np.uint8)
    return g if len(shape) == 2 else np.repeat(g[..., None], shape[2], axis=2)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 2), (2, 1, 4), (1, 3000), (3000, 1, 3), (2, 4000),
                                   (3, 97, 3), (97, 3), (200, 97), (97, 200, 4), (300, 290, 1), (9, 9)])
def test_gate_geometry_edges(shape):
    """The edges the random cases reach only sometimes, each time: bboxes touching the right and
    bottom edges at every stride offset, one-pixel and empty regions and bboxes (also at the
    frame's far edge), bands under 4 % (whole frame), tight boxes of disks; flipped views."""
    h, w = shape[:2]
    frame = _gate_frame(shape)
    full = np.ones((h, w), np.uint8)
    cases = [(full, (0, 0, w, h)), (np.zeros((h, w), bool), (0, 0, 0, 0)),
             (np.zeros((h, w), np.uint8), (w, h, w, h)), (np.zeros((h, w), np.uint8), (w, 0, w, h)),
             (np.zeros((h, w), np.uint8), (0, h, w, h))]
    st = max(1, -(-max(h, w) // 96))
    for off in range(min(w, 2 * st + 1)):  # right edge: every stride offset of x0
        cases.append((full, (off, 0, w, h)))
    for off in range(min(h, 2 * st + 1)):
        cases.append((full, (0, off, w, h)))
    one = np.zeros((h, w), np.uint8)
    one[h - 1, w - 1] = 255
    cases += [(one, (w - 1, h - 1, w, h)), (one, (0, 0, w, h))]
    band = np.zeros((h, w), np.uint8)
    band[h // 2, :] = 1  # one row: under 4 % once h > 25, and the whole frame is measured
    cases.append((band, (0, h // 2, w, h // 2 + 1)))
    yy, xx = np.ogrid[:h, :w]
    disk = (yy - h // 2) ** 2 + (xx - w // 2) ** 2 <= (min(h, w) // 2) ** 2
    ys, xs = np.nonzero(disk)
    cases.append((disk, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    flips = [frame, frame[::-1], frame[:, ::-1]] + ([frame[..., ::-1]] if frame.ndim == 3 else [])
    for view in flips:
        for mask, bbox in cases:
            check_gate(dict(pixels=view, mask=mask, bbox=bbox))
            check_gate(dict(pixels=view, mask=mask[::-1, ::-1].copy()[::-1, ::-1], bbox=list(bbox)))
    if h > 25:
        assert gate_figures(frame, band, (0, h // 2, w, h // 2 + 1)).whole_frame


def test_seeded_mix_like_the_long_run():
    """A slice of bench/fuzz_ops.py's own case stream (same seeds, same order)."""
    for seed in range(300):
        run_seeded_case(seed)


def test_invalid_calls_leave_no_state_behind():
    """After a burst of rejected calls, valid calls give bit-identical results."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x = rng.standard_normal((7, 24)).astype(np.float32)
    c = rng.standard_normal((93, 24)).astype(np.float32)
    before_p = preprocess(frame, size=(20, 30), roi=(3, 2, 50, 30))
    before_s = similarity(x, c, groups=[5, 9, 52, 7, 2, 5, 6, 2, 5])
    mask = (rng.random((37, 53)) < 0.8).astype(np.uint8)
    before_g = gate_figures(frame, mask, (2, 1, 53, 37))
    for seed in range(300):
        d = NumpyDraw(10_000 + seed)
        if seed % 3 == 1:
            check_rejected(preprocess, *bad_preprocess_case(d))
        elif seed % 3 == 2:
            check_rejected(similarity, *bad_similarity_case(d))
        else:
            check_gate_rejected(*bad_gate_case(d))
    assert gate_figures(frame, mask, (2, 1, 53, 37)) == before_g
    np.testing.assert_array_equal(preprocess(frame, size=(20, 30), roi=(3, 2, 50, 30)), before_p)
    after_s = similarity(x, c, groups=[5, 9, 52, 7, 2, 5, 6, 2, 5])
    for name in ("logits", "probs", "topk_indices", "topk_values", "group_argmax", "group_probs"):
        np.testing.assert_array_equal(getattr(after_s, name), getattr(before_s, name))


def test_empty_batch_still_rejects_non_finite_class_embeddings():
    """N = 0: the native kernel returns before reading class_emb; the Python face checks it."""
    c = np.ones((4, 8), np.float32)
    c[2, 3] = np.nan
    with pytest.raises(ValueError, match="class_emb row 2 column 3 is NaN"):
        similarity(np.zeros((0, 8), np.float32), c)
    c[2, 3] = np.inf
    with pytest.raises(ValueError, match="is infinite"):
        similarity(np.zeros((0, 8), np.float32), c)
    c[2] = 0
    with pytest.raises(ValueError, match="row 2 has zero L2 norm"):
        similarity(np.zeros((0, 8), np.float32), c)
    empty = similarity(np.zeros((0, 8), np.float32), c, normalize=False)  # zero rows fine unnormalised
    assert empty.logits.shape == (0, 4)


def test_float_and_bool_group_sizes_are_rejected_even_after_a_valid_call():
    """Regression: (1.0, 1.0) == (1, 1) in Python, so an lru_cache keyed on the sizes alone
    let float/bool sizes through once the integer tuple had been seen."""
    x, c = np.ones((1, 4), np.float32), np.eye(2, 4, dtype=np.float32)
    similarity(x, c, groups=[1, 1])
    for groups in ([1.0, 1.0], [True, True], (np.float64(1), 1)):
        with pytest.raises(ValueError, match="groups"):
            similarity(x, c, groups=groups)
