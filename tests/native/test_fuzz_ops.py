"""Fuzzing of the native ops (preprocess, similarity) against their numpy references.

Valid random calls (shapes, channel counts, dtypes, strided / negative-stride / broadcast /
Fortran / read-only views, rois, masks, output buffers, groups, exact ties, extreme
magnitudes) must agree with the float64 reference within float32 rounding (bounds in
tests/fuzz_cases.py) and leave their inputs untouched. Invalid calls (one argument broken)
must raise ValueError/TypeError or a usclip_sdk.errors type, never anything else, never crash.

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

from fuzz_cases import (HypothesisDraw, NumpyDraw, bad_preprocess_case, bad_similarity_case,
                        check_preprocess, check_rejected, check_similarity, preprocess_case,
                        run_seeded_case, similarity_case)
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


def test_seeded_mix_like_the_long_run():
    """A slice of bench/fuzz_ops.py's own case stream (same seeds, same order)."""
    for seed in range(200):
        run_seeded_case(seed)


def test_invalid_calls_leave_no_state_behind():
    """After a burst of rejected calls, valid calls give bit-identical results."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x = rng.standard_normal((7, 24)).astype(np.float32)
    c = rng.standard_normal((93, 24)).astype(np.float32)
    before_p = preprocess(frame, size=(20, 30), roi=(3, 2, 50, 30))
    before_s = similarity(x, c, groups=[5, 9, 52, 7, 2, 5, 6, 2, 5])
    for seed in range(300):
        d = NumpyDraw(10_000 + seed)
        if seed % 2:
            check_rejected(preprocess, *bad_preprocess_case(d))
        else:
            check_rejected(similarity, *bad_similarity_case(d))
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
