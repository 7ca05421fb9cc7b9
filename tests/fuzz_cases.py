"""Random cases for fuzzing the native ops (preprocess, similarity, the quality gate's figures)
against their numpy references.

One generator serves two drivers: hypothesis in CI (tests/native/test_fuzz_ops.py, which can shrink a
failure to a small case) and a seeded numpy loop for the long run (bench/fuzz_ops.py, which is
about 50x cheaper per case). Both go through ``Draw``: ``int(lo, hi)`` (inclusive), ``pick(seq)``
and ``coin()``; pixel and embedding values come from a numpy Generator seeded by a drawn int.

Valid cases cover shapes, channel counts, dtypes, strided and negative-stride views on every
axis, zero-stride (broadcast) views, read-only and Fortran-ordered inputs, rois, masks, output
buffers, groups, ties and extreme magnitudes. Invalid cases take a valid one and break exactly
one argument; the op must then raise ValueError/TypeError (or a usclip_sdk.errors type).

Quality gate (``gate_figures``): grey / RGB / RGBA / one-channel frames from 1 x 1 to 4000-long
slivers, laid out in buffers of garbage (stepped, reversed, cropped, RGBA's channels, Fortran,
broadcast, read-only); masks (rectangles, disks, random, empty, one pixel, thin bands) and
bboxes (tight, whole, touching the right/bottom edge, one pixel, empty, at the frame's edge).
Its invalid cases must raise the documented TypeError/ValueError *naming the argument*, from
the Python face and from the native entry, which repeats the checks it relies on.
"""
from __future__ import annotations

import numpy as np

from usclip_sdk import taxonomy
from usclip_sdk.errors import UsclipError
from usclip_sdk.ops import cuda_available
from usclip_sdk.ops._native import native
from usclip_sdk.ops.gate import gate_figures
from usclip_sdk.ops.preprocess import preprocess
from usclip_sdk.ops.preprocess_args import CLIP_MEAN, CLIP_STD
from usclip_sdk.ops.similarity import similarity

__all__ = ["NumpyDraw", "HypothesisDraw", "TYPED_ERRORS", "KINDS", "preprocess_case", "bad_preprocess_case",
           "similarity_case", "bad_similarity_case", "check_preprocess", "check_similarity",
           "check_rejected", "gate_case", "bad_gate_case", "check_gate", "check_gate_rejected",
           "GATE_EXACT", "GATE_MOMENTS", "GATE_MOMENT_RTOL", "run_seeded_case"]

# What an invalid call may raise. Anything else (or a crash) is a bug.
TYPED_ERRORS = (ValueError, TypeError, UsclipError)


class NumpyDraw:
    """Draw from a numpy Generator (the long run)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def coin(self) -> bool:
        return bool(self.rng.integers(2))


class HypothesisDraw:
    """Draw from hypothesis' ``st.data()`` (CI: shrinkable)."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def pick(self, seq):
        return self.data.draw(self.st.sampled_from(list(seq)))

    def coin(self) -> bool:
        return self.data.draw(self.st.booleans())


def _rng(d) -> np.random.Generator:
    return np.random.default_rng(d.int(0, 2**32 - 1))


def strided(d, rng, shape, make) -> np.ndarray:
    """An array of ``shape`` whose memory layout is drawn: each axis may be stepped (2) and/or
    reversed; then maybe Fortran order, a zero-stride broadcast axis, or read-only."""
    steps = [d.pick([1, 1, 1, 2, -1, -2]) for _ in shape]
    base = make(tuple(s * abs(k) for s, k in zip(shape, steps)), rng)
    view = base[tuple(slice(None, None, k) for k in steps)]
    kind = d.pick(["view", "view", "fortran", "broadcast", "readonly"])
    if kind == "fortran":
        view = np.asfortranarray(view)
    elif kind == "broadcast" and len(shape) >= 2:
        ax = d.int(0, len(shape) - 2)  # never the innermost axis alone: that is covered too
        one = view[(slice(None),) * ax + (slice(0, 1),)]
        view = np.broadcast_to(one, shape)
    elif kind == "readonly":
        view = view.copy()
        view.setflags(write=False)
    return view


def _pixels(shape, rng) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _frame_shape(d) -> tuple[tuple[int, ...], bool, int, int, int]:
    n = d.pick([None, None, 0, 1, 2, 3])
    c = d.pick([None, 1, 3, 3, 4])
    h = d.pick([1, 2, 3, d.int(1, 64), d.int(1, 64)])
    w = d.pick([1, 2, 3, d.int(1, 64), d.int(1, 64)])
    shape = ((n,) if n is not None else ()) + (h, w) + ((c,) if c else ())
    if n is not None and c is None and w in (1, 3, 4):
        shape += (1,)  # a gray batch with such a width must carry its channel axis
    return shape, n is not None, n or 0, h, w


def _roi(d, h: int, w: int):
    kind = d.pick(["none", "full", "sub", "sub", "pixel", "array"])
    if kind == "none":
        return None
    if kind == "full":
        return (0, 0, w, h)
    x0, y0 = d.int(0, w - 1), d.int(0, h - 1)
    if kind == "pixel":
        return (x0, y0, x0 + 1, y0 + 1)
    roi = (x0, y0, d.int(x0 + 1, w), d.int(y0 + 1, h))
    return np.array(roi, dtype=d.pick([np.int32, np.int64])) if kind == "array" else list(roi)


def _mask(d, rng, batched: bool, n: int, h: int, w: int):
    if d.pick([True, False, False]):
        return None
    shape = (n, h, w) if batched and d.coin() else (h, w)
    density = d.pick([0.0, 0.3, 0.9, 1.0])
    val = d.pick(["one", "255", "any", "bool"])

    def make(s, r):
        m = r.random(s) < density
        if val == "bool":
            return m
        nz = {"one": 1, "255": 255}.get(val)
        return np.where(m, nz if nz else r.integers(1, 256, s), 0).astype(np.uint8)
    return strided(d, rng, shape, make)


def _triple(d, values, lo: float, hi: float, rng):
    kind = d.pick(["default", "scalar", "triple", "array"])
    if kind == "default":
        return values
    if kind == "scalar":
        return float(rng.uniform(lo, hi))
    t = tuple(float(v) for v in rng.uniform(lo, hi, 3))
    return np.array(t) if kind == "array" else t


def preprocess_case(d) -> dict:
    """Keyword arguments of one valid ``preprocess`` call (``frames`` included)."""
    rng = _rng(d)
    shape, batched, n, h, w = _frame_shape(d)
    content = d.pick(["random", "random", "binary", "constant"])
    make = {"random": _pixels,
            "binary": lambda s, r: (r.integers(0, 2, s) * 255).astype(np.uint8),
            "constant": lambda s, r: np.full(s, r.integers(256), np.uint8)}[content]
    frames = strided(d, rng, shape, make)
    size = d.pick([(d.int(1, 48), d.int(1, 48)), d.int(1, 40), (1, 1), (h, w), (2 * h, w)])
    kw = dict(frames=frames, size=size, roi=_roi(d, h, w), mask=_mask(d, rng, batched, n, h, w),
              mean=_triple(d, CLIP_MEAN, 0.0, 1.0, rng), std=_triple(d, CLIP_STD, 0.05, 1.0, rng),
              fill=_triple(d, 0.0, -0.5, 1.5, rng), color=d.pick(["rgb", "bgr"]),
              resize=d.pick(["stretch", "letterbox"]),
              dtype=d.pick(["float32", "float16", np.float32, np.dtype(np.float16)]))
    if d.pick([False, False, True]):
        sz = (kw["size"], kw["size"]) if isinstance(kw["size"], int) else kw["size"]
        dt = np.dtype(kw["dtype"])
        kw["out"] = np.full((max(n, 1) if batched else 1, 3) + tuple(sz), np.nan, dt)
        if batched and n == 0:
            kw["out"] = np.empty((0, 3) + tuple(sz), dt)
    return kw


def bad_preprocess_case(d) -> tuple[str, dict]:
    """(what was broken, keyword arguments): a valid call with exactly one argument broken."""
    kw = preprocess_case(d)
    f = kw["frames"]
    h, w = (f.shape[1:3] if f.ndim == 4 or (f.ndim == 3 and f.shape[2] not in (1, 3, 4))
            else f.shape[:2])
    what = d.pick(["dtype", "ndim", "empty", "roi", "mask", "size", "mean", "std", "fill",
                   "color", "resize", "odtype", "out", "device"])
    bad = {
        "dtype": lambda: {"frames": f.astype(d.pick([np.float32, np.float64, np.int16, np.uint16,
                                                      np.int64, np.bool_, np.complex64, object]))},
        "ndim": lambda: {"frames": d.pick([f.reshape(-1), f.reshape((1, 1, 1) + f.shape)
                                           if f.ndim >= 3 else f.reshape((1,) * 5 + f.shape),
                                           np.zeros((), np.uint8), np.zeros((2, 4, 5, 2), np.uint8),
                                           np.zeros((2, 4, 5, 7), np.uint8)])},
        "empty": lambda: {"frames": np.zeros(d.pick([(0, 5), (5, 0), (0, 0, 3), (2, 0, 4, 3),
                                                     (2, 4, 0, 1)]), np.uint8), "roi": None, "mask": None},
        "roi": lambda: {"roi": d.pick([(0, 0, 0, 0), (-1, 0, w, h), (0, 0, w + 1, h), (0, 0, w, h + 1),
                                       (1, 1, 1, 1), (0.0, 0, w, h), (True, 0, w, h), (0, 0, w),
                                       "full", (0, 0, w, h, 1), (None, 0, w, h), np.array([0.5, 0, w, h])])},
        "mask": lambda: {"mask": d.pick([np.ones((h + 1, w), np.uint8), np.ones((h, w), np.float32),
                                         np.ones((h, w), np.int32), np.ones(w, np.uint8),
                                         np.ones((7, h, w), np.uint8), np.ones((h, w, 5), np.uint8),
                                         [[1] * w] * h])},
        "size": lambda: {"size": d.pick([0, -3, (0, 5), (5, -1), (2.5, 4), (True, 4), (4, 4, 4),
                                         "224", None, 3.0, (4,)])},
        "mean": lambda: {"mean": d.pick([float("nan"), (0.5, float("inf"), 0.5), (0.5, 0.5), "x",
                                         None, True])},
        "std": lambda: {"std": d.pick([0.0, -1.0, (1.0, 0.0, 1.0), float("nan"), (1, 1), [], False])},
        "fill": lambda: {"fill": d.pick([float("inf"), (0, 0), "black", None])},
        "color": lambda: {"color": d.pick(["gray", "RGB ", None, 3])},
        "resize": lambda: {"resize": d.pick(["crop", None, "", 1])},
        "odtype": lambda: {"dtype": d.pick(["float64", "int8", None, np.uint8, "half ", object])},
        "out": lambda: {"out": d.pick([np.empty((9, 3, 1, 1), np.float32), [0.0],
                                       np.empty((1, 3, 64, 64), np.float64)])},
        "device": lambda: {"device": d.pick(["gpu", "cuda:x", None, 0, "CPU"]
                                             + ([] if cuda_available() else ["cuda"]))},
    }[what]()
    kw.update(bad)
    if what != "out":
        kw.pop("out", None)
    return what, kw


def similarity_case(d) -> dict:
    """Keyword arguments of one valid ``similarity`` call."""
    rng = _rng(d)
    n, k, dim = d.pick([0, 1, 2, d.int(0, 48)]), d.pick([1, 2, 93, d.int(1, 100)]), d.int(1, 130)
    normalize = d.coin()
    mag = 10.0 ** d.pick([0, 0, -12, 12, -3, 3]) if normalize else 0.3
    xt, ct = d.pick([np.float32, np.float16]), d.pick([np.float32, np.float16])
    if xt == np.float16 or ct == np.float16:
        mag = 1.0 if normalize else 0.3  # float16 cannot hold the extreme magnitudes

    def gauss(dtype):
        return lambda s, r: (r.standard_normal(s) * mag).astype(dtype)
    x = strided(d, rng, (n, dim), gauss(xt))
    c = strided(d, rng, (k, dim), gauss(ct))
    if k >= 2 and d.coin():  # exact duplicate class rows: exact ties, lower index must win
        c = np.array(c)
        src = rng.integers(0, k, k // 3 + 1)
        dst = rng.integers(0, k, k // 3 + 1)
        c[dst] = c[src]
    if n and d.coin():
        x = x[0]  # one embedding: 1-D in, 1-D out
    if normalize:  # a float16 row can round to all zeros: that is the invalid case, not this one
        x = _nonzero_rows(x, rng)
        c = _nonzero_rows(c, rng)
    groups = None
    if k == 93 and d.coin():
        groups = list(taxonomy.group_sizes())
    elif d.coin():
        cuts = sorted({d.int(1, k - 1) for _ in range(d.int(0, 12))}) if k > 1 else []
        groups = [b - a for a, b in zip([0, *cuts], [*cuts, k])]
    return dict(image_emb=x, class_emb=c, normalize=normalize, groups=groups,
                topk=d.pick([0, 1, 5, k, k + 3, d.int(0, k)]),
                scale=d.pick([100.0, 1.0, 0.0, -7.5, 1e-3, float(rng.uniform(-200, 200))]),
                bias=d.pick([0.0, -3.25, 1e3]))


def _nonzero_rows(a: np.ndarray, rng) -> np.ndarray:
    a2 = np.atleast_2d(a)
    if a2.size == 0 or np.all(np.any(a2 != 0, axis=1)):
        return a
    fixed = np.array(a2)
    fixed[~np.any(a2 != 0, axis=1), 0] = 1
    return fixed[0] if a.ndim == 1 else fixed


def bad_similarity_case(d) -> tuple[str, dict]:
    """(what was broken, keyword arguments): a valid call with exactly one argument broken."""
    kw = similarity_case(d)
    x, c = kw["image_emb"], kw["class_emb"]
    what = d.pick(["xdtype", "cdtype", "nonfinite", "zero", "width", "noclass", "ndim", "groups",
                   "topk", "scale", "bias", "overflow", "device"])

    def poison(a, v):
        a = np.array(a)
        if a.size:
            a.flat[d.int(0, a.size - 1)] = v
        else:
            a = np.full((1,) * a.ndim if a.ndim else (1,), v, a.dtype)
        return a
    if what in ("zero", "overflow") and x.size == 0:
        what = "nonfinite"
    key = "class_emb" if x.size == 0 else d.pick(["image_emb", "class_emb"])
    bad = {
        "xdtype": lambda: {"image_emb": np.asarray(x).astype(d.pick([np.float64, np.int32, np.int8,
                                                                     np.bool_, np.complex64, object]))},
        "cdtype": lambda: {"class_emb": np.asarray(c).astype(d.pick([np.float64, np.uint8, np.int64]))},
        "nonfinite": lambda: {key: poison(kw[key], d.pick([np.nan, np.inf, -np.inf]))},
        "zero": lambda: {"image_emb": _zero_row(x, d), "normalize": True},
        "width": lambda: {"class_emb": np.ones((c.shape[0], c.shape[1] + 1), np.float32)},
        "noclass": lambda: {"class_emb": np.ones((0, c.shape[1]), np.float32), "groups": None},
        "ndim": lambda: {d.pick(["image_emb", "class_emb"]): d.pick(
            [np.ones((2, 2, c.shape[1]), np.float32), np.float32(1.0)])},
        "groups": lambda: {"groups": d.pick([[c.shape[0] + 1], [0, c.shape[0]], [-1, c.shape[0] + 1],
                                             [c.shape[0] / 2, c.shape[0] / 2], [True] * c.shape[0],
                                             ["1"] * c.shape[0], []])},
        "topk": lambda: {"topk": d.pick([-1, 1.5, True, "3", None, np.float32(2)])},
        "scale": lambda: {"scale": d.pick([float("nan"), float("inf"), "a", None, [1.0]])},
        "bias": lambda: {"bias": d.pick([float("-inf"), float("nan"), "b", None])},
        "overflow": lambda: {"image_emb": np.full(x.shape, 1e37, np.float32),
                             "class_emb": np.ones_like(c, np.float32),
                             "normalize": False, "scale": 1e3},
        "device": lambda: {"device": d.pick(["gpu", "cuda:-1", None, 0, "CPU", "cuda:"]
                                             + ([] if cuda_available() else ["cuda"]))},
    }
    with np.errstate(all="ignore"):  # casting 1e12 to uint8 is the point, not a warning
        bad = bad[what]()
    kw.update(bad)
    return what, kw


def _zero_row(x, d):
    a = np.array(x)
    if a.ndim == 1:
        return np.zeros_like(a)
    a[d.int(0, a.shape[0] - 1)] = 0
    return a


def _unchanged(before: dict, after: dict) -> None:
    for key, v in before.items():
        if isinstance(v, np.ndarray) and key != "out":
            if not np.array_equal(v, after[key], equal_nan=v.dtype.kind == "f"):
                raise AssertionError(f"{key} was modified by the call")


def _snapshot(kw: dict) -> dict:
    return {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


def check_preprocess(kw: dict) -> None:
    """Native == reference within float32/float16 rounding; inputs untouched; out honoured."""
    from usclip_sdk.ops.preprocess import preprocess
    from usclip_sdk.ops.preprocess_reference import preprocess_reference

    before = _snapshot(kw)
    ref_kw = {k: v for k, v in kw.items() if k != "out"}
    want = preprocess_reference(**ref_kw)
    got = preprocess(**kw)
    _unchanged(before, kw)
    if "out" in kw and got is not kw["out"]:
        raise AssertionError("out was given but a different array was returned")
    if got.shape != want.shape or got.dtype != want.dtype:
        raise AssertionError(f"shape/dtype {got.shape} {got.dtype} != {want.shape} {want.dtype}")
    std = np.min(np.atleast_1d(np.asarray(kw["std"], dtype=np.float64)))
    g, r = got.astype(np.float64), want.astype(np.float64)
    if got.dtype == np.float16:
        ok = np.abs(g - r) <= 2e-3 + 1e-3 * np.abs(r)
    else:
        ok = np.abs(g - r) <= 1e-4 * max(1.0, 0.27 / std)  # the tests' 1e-4 at CLIP's std
    if not np.all(ok):
        i = np.unravel_index(int(np.argmin(ok)), ok.shape)
        raise AssertionError(f"preprocess differs at {i}: native {g[i]} reference {r[i]}")


def _logit_tol(kw: dict) -> np.ndarray:
    """Per-entry bound on float32 accumulation error (|scale| * (D + 4) * eps * sum |x||c|)."""
    x = np.atleast_2d(np.asarray(kw["image_emb"], np.float64))
    c = np.asarray(kw["class_emb"], np.float64)
    if kw["normalize"]:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
    eps = np.finfo(np.float32).eps
    return abs(kw["scale"]) * (x.shape[1] + 4) * eps * (np.abs(x) @ np.abs(c).T) \
        + 2 * eps * abs(kw["bias"]) + 1e-6


def check_similarity(kw: dict) -> None:
    """Native == float64 reference within accumulation error; ties to the lower index."""
    from usclip_sdk.ops.similarity import similarity
    from usclip_sdk.ops.similarity_reference import similarity_reference

    before = _snapshot(kw)
    want = similarity_reference(**kw)
    got = similarity(**kw)
    _unchanged(before, kw)
    tol = _logit_tol(kw)
    gl, rl = np.atleast_2d(got.logits), np.atleast_2d(want.logits).astype(np.float64)
    _close("logits", gl, rl, tol)
    ptol = 2 * tol.max(initial=0) + 2e-6
    _close("probs", got.probs, want.probs, ptol)
    _close("topk_values", got.topk_values, want.topk_values, ptol)
    for name in ("logits", "probs", "topk_indices", "topk_values"):
        a, b = getattr(got, name), getattr(want, name)
        if a.shape != b.shape:
            raise AssertionError(f"{name}: shape {a.shape} != {b.shape}")
    gi, ri = np.atleast_2d(got.topk_indices), np.atleast_2d(want.topk_indices)
    for row in range(rl.shape[0]):
        if len(set(gi[row].tolist())) != gi.shape[1]:
            raise AssertionError(f"topk row {row} repeats a class: {gi[row]}")
        _close("topk logits", rl[row, gi[row]], rl[row, ri[row]], 2 * tol[row].max(initial=0))
    _check_ties(kw, gi, None if got.group_argmax is None else np.atleast_2d(got.group_argmax))
    if (got.group_argmax is None) != (want.group_argmax is None):
        raise AssertionError("group outputs present on one side only")
    if want.group_argmax is not None:
        ga, ra = np.atleast_2d(got.group_argmax), np.atleast_2d(want.group_argmax)
        for row in range(rl.shape[0]):
            _close("group argmax logits", rl[row, ga[row]], rl[row, ra[row]], 2 * tol[row].max())
        _close("group_probs", got.group_probs, want.group_probs, ptol)


def _close(name: str, got, want, tol) -> None:
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if g.shape != w.shape:
        raise AssertionError(f"{name}: shape {g.shape} != {w.shape}")
    bad = ~(np.abs(g - w) <= tol)
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise AssertionError(f"{name} differs at {i}: native {g[i]} reference {w[i]} (tol {tol})")


def _check_ties(kw: dict, topk: np.ndarray, gargmax) -> None:
    """Exact duplicate class rows give exact ties: the lower index must come first."""
    c = np.asarray(kw["class_emb"])
    k = c.shape[0]
    gid = np.repeat(np.arange(len(kw["groups"] or [k])), kw["groups"] or [k])
    _, first, inverse = np.unique(c, axis=0, return_index=True, return_inverse=True)
    lowest = first[inverse.reshape(-1)]  # the lowest index holding the same row
    dups = [(int(lowest[j2]), int(j2)) for j2 in np.flatnonzero(lowest != np.arange(k))]
    if not dups:
        return
    for row in topk:
        pos = {int(v): p for p, v in enumerate(row)}
        for j, j2 in dups:
            if j2 in pos and (j not in pos or pos[j] > pos[j2]):
                raise AssertionError(f"tie between classes {j} and {j2}: top-k {row}")
    for j, j2 in dups:
        if gargmax is not None and gid[j] == gid[j2] and np.any(gargmax == j2):
            raise AssertionError(f"tie between classes {j} and {j2}: group argmax chose {j2}")


def check_rejected(op, what: str, kw: dict) -> None:
    """``op(**kw)`` must raise a typed error (the process surviving is checked by running)."""
    try:
        op(**kw)
    except TYPED_ERRORS:
        return
    desc = {k: (v.shape, str(v.dtype)) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    raise AssertionError(f"{op.__name__}: broken {what!r} was accepted: {desc}")


# ------------------------------------------------------------------ quality gate
# The comparison of tests/native/test_ops_gate.py (test_fuzz_ops.py checks that these stay equal
# to its EXACT, MOMENTS and MOMENT_RTOL): counts and the speckle ratio identical, the moments
# (double sums in the kernels, float32 ones in the reference) within MOMENT_RTOL plus 1e-6.
GATE_EXACT = ("pixels", "area_fraction", "whole_frame", "echo_p99", "dark_fraction", "colour_fraction",
              "grey_levels", "flat_fraction", "speckle_snr")
GATE_MOMENTS = ("contrast", "mean", "correlation", "texture")
GATE_MOMENT_RTOL = 2e-5


def _gate_shape(d) -> tuple[int, ...]:
    """1 x 1 up to 320 a side (over 96: the sample is strided), or a sliver up to 4000 long."""
    kind = d.pick(["plain"] * 8 + ["wide", "tall"])
    side = [1, 2, 3, 8, 9, d.int(1, 64), d.int(1, 64), d.int(65, 320)]
    if kind == "wide":
        h, w = d.pick([1, 2, 3, 9]), d.int(97, 4000)
    elif kind == "tall":
        h, w = d.int(97, 4000), d.pick([1, 2, 3, 9])
    else:
        h, w = d.pick(side), d.pick(side)
    c = d.pick([None, None, 1, 3, 3, 3, 4])
    return (h, w) + ((c,) if c else ())


def _coarse(rng, h: int, w: int, cell: int) -> np.ndarray:
    """A blocky float field (cell x cell constant blocks) of h x w."""
    c = rng.uniform(0, 255, (-(-h // cell), -(-w // cell)))
    return c[np.arange(h) // cell][:, np.arange(w) // cell]


def _gate_pixels(d, rng, shape) -> np.ndarray:
    """Frame content: noise, speckle (uncorrelated and blurred), flat, binary, dark, grey-in-RGB."""
    h, w = shape[:2]
    kind = d.pick(["random", "speckle", "speckle", "smooth", "constant", "binary", "dark"])
    if kind == "random":  # per channel: colour noise for RGB
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "constant":
        return np.full(shape, rng.integers(256), np.uint8)
    if kind == "binary":
        g = rng.integers(0, 2, (h, w)) * 255.0
    elif kind == "dark":
        g = rng.integers(0, 20, (h, w)).astype(np.float64)
    elif kind == "speckle":
        g = _coarse(rng, h, w, d.int(2, 32)) * rng.rayleigh(0.8, (h, w))
    else:
        g = _coarse(rng, h, w, d.int(2, 32)) + rng.normal(0, 3, (h, w))
    g = np.clip(g, 0, 255).astype(np.uint8)
    if len(shape) == 2:
        return g
    a = np.repeat(g[..., None], shape[2], axis=2)
    if shape[2] >= 3 and d.coin():  # a coloured overlay (annotation) somewhere
        y, x = d.int(0, h - 1), d.int(0, w - 1)
        a[y:y + d.int(1, 8), x:x + d.int(1, 8), :3] = rng.integers(0, 256, 3, dtype=np.uint8)
    return a


def _laid_out(d, rng, a: np.ndarray) -> np.ndarray:
    """``a``'s values in a drawn memory layout, inside buffers of random garbage so that a read of
    the wrong element shows: axes stepped (2) and/or reversed, a crop of a larger frame, three
    channels of an RGBA buffer (maybe channel-reversed), Fortran order, read-only; or a zero-stride
    broadcast of its first row or column (new values, still a valid input)."""
    kind = d.pick(["contiguous", "steps", "steps", "crop", "channels", "fortran", "broadcast", "readonly"])

    def garbage(shape):
        return rng.integers(0, 256, shape, dtype=np.uint8).astype(a.dtype)
    if kind == "steps":
        steps = [d.pick([1, 2, -1, -2]) for _ in a.shape]
        base = garbage(tuple(s * abs(k) for s, k in zip(a.shape, steps)))
        view = base[tuple(slice(None, None, k) for k in steps)]
    elif kind == "crop":
        top, left = d.int(0, 5), d.int(0, 5)
        base = garbage((a.shape[0] + top + d.int(0, 5), a.shape[1] + left + d.int(0, 5)) + a.shape[2:])
        view = base[top:top + a.shape[0], left:left + a.shape[1]]
        if d.coin():
            view = view[::-1, ::-1]
    elif kind == "channels" and a.ndim == 3 and a.shape[2] == 3:
        base = garbage(a.shape[:2] + (4,))
        view = base[..., ::-1] if d.coin() else base
        view = view[..., 1:] if d.coin() else view[..., :3]
    elif kind == "fortran":
        return np.asfortranarray(a)
    elif kind == "broadcast":
        one = a[:1] if d.coin() else a[:, :1]
        return np.broadcast_to(one, a.shape)
    elif kind == "readonly":
        a = a.copy()
        a.setflags(write=False)
        return a
    else:
        return np.ascontiguousarray(a)
    view[...] = a
    return view


def _gate_mask(d, rng, h: int, w: int) -> np.ndarray:
    """The imaging region: rectangle (edges included), disk or sector, random pixels, empty, one
    pixel, whole frame, a band one or two rows high (under 4 %: the whole frame is measured)."""
    kind = d.pick(["rect", "rect", "disk", "random", "empty", "pixel", "full", "band"])
    m = np.zeros((h, w), bool)
    if kind == "rect":
        x0, y0 = d.int(0, w - 1), d.int(0, h - 1)
        m[y0:d.int(y0 + 1, h), x0:d.int(x0 + 1, w)] = True
    elif kind == "disk":
        yy, xx = np.ogrid[:h, :w]
        cy, cx, r = d.int(-h // 2, h), d.int(0, w - 1), d.int(0, max(h, w))
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if d.coin():
            m &= yy >= cy  # a sector's lower half
    elif kind == "random":
        m = rng.random((h, w)) < d.pick([0.01, 0.3, 0.9, 1.0])
    elif kind == "pixel":
        m[d.int(0, h - 1), d.int(0, w - 1)] = True
    elif kind == "full":
        m[:] = True
    elif kind == "band":
        y0 = d.int(0, h - 1)
        m[y0:y0 + d.int(1, 2), d.int(0, w // 2):] = True
    val = d.pick(["one", "255", "any", "bool"])
    if val == "bool":
        return _laid_out(d, rng, m)
    nz = {"one": 1, "255": 255}.get(val)
    return _laid_out(d, rng, np.where(m, nz if nz else rng.integers(1, 256, (h, w)), 0).astype(np.uint8))


def _gate_bbox(d, mask: np.ndarray, h: int, w: int):
    """The mask's bounding box (as a Region has it) or another box inside the frame: whole,
    random (maybe empty), touching the right and bottom edges, one pixel, empty at the edges;
    as a tuple or list of Python or numpy integers."""
    kind = d.pick(["tight", "tight", "tight", "full", "sub", "edge", "pixel", "empty"])
    if kind == "tight":
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if ys.size else (0, 0, 0, 0)
    elif kind == "full":
        box = (0, 0, w, h)
    elif kind == "sub":
        x0, y0 = d.int(0, w), d.int(0, h)
        box = (x0, y0, d.int(x0, w), d.int(y0, h))
    elif kind == "edge":
        box = (d.int(0, w - 1), d.int(0, h - 1), w, h)
    elif kind == "pixel":
        x, y = d.int(0, w - 1), d.int(0, h - 1)
        box = (x, y, x + 1, y + 1)
    else:
        x, y = d.pick([0, w, d.int(0, w)]), d.pick([0, h, d.int(0, h)])
        box = (x, d.int(0, y), x, y) if d.coin() else (d.int(0, x), y, x, y)
    form = d.pick(["tuple", "tuple", "list", "numpy"])
    if form == "numpy":
        t = d.pick([np.int32, np.int64, np.uint16])
        return tuple(t(v) for v in box)
    return list(box) if form == "list" else box


def gate_case(d) -> dict:
    """Keyword arguments of one valid ``gate_figures`` call."""
    rng = _rng(d)
    shape = _gate_shape(d)
    h, w = shape[:2]
    pixels = _laid_out(d, rng, _gate_pixels(d, rng, shape))
    mask = _gate_mask(d, rng, h, w)
    kw = dict(pixels=pixels, mask=mask, bbox=_gate_bbox(d, np.asarray(mask), h, w))
    if d.coin():
        kw["device"] = "cpu"
    return kw


def check_gate(kw: dict) -> None:
    """Native == numpy reference (identical counts, moments within GATE_MOMENT_RTOL); inputs
    untouched."""
    from usclip_sdk.ops.gate_reference import gate_figures_reference

    before = _snapshot(kw)
    got = gate_figures(**kw)
    _unchanged(before, kw)
    p = kw["pixels"]
    # The reference reads a 3-D frame's three colour channels: one channel is given to it as 2-D.
    # Its bbox arithmetic needs Python ints (-max(...) of numpy unsigned integers wraps around).
    box = tuple(int(v) for v in kw["bbox"])
    want = gate_figures_reference(p[..., 0] if p.ndim == 3 and p.shape[2] == 1 else p, kw["mask"], box)
    shape = f"frame {p.shape} strides {p.strides}, bbox {box}"
    for name in GATE_EXACT:
        if getattr(got, name) != getattr(want, name):
            raise AssertionError(f"gate {name}: native {getattr(got, name)!r} reference "
                                 f"{getattr(want, name)!r} ({shape})")
    # Degenerate statistics, where the reference's float32 arithmetic leaves rounding residue
    # (its mean of a constant is not always that constant) and the kernels' exact sums do not:
    # a constant inside has contrast 0 (the reference: up to ~1e-5 of the mean), and lag-1 pairs
    # with a constant side have correlation 0/0, 1.0 by the reference's own rule ("a constant
    # region is not noise"; the reference: residue ~1e-7 of either sign). Checked as such.
    flat, flat_pair = _gate_constant_sides(p, kw["mask"], box, got.whole_frame) if got.pixels >= 16 else (0, 0)
    if flat and not (got.contrast == 0.0 and abs(want.contrast) <= 1e-5 * max(want.mean, 1.0)):
        raise AssertionError(f"gate contrast of a constant inside: native {got.contrast!r} reference "
                             f"{want.contrast!r} ({shape})")
    if flat_pair and got.correlation != 1.0:
        raise AssertionError(f"gate correlation with a constant side: native {got.correlation!r}, "
                             f"expected 1.0 ({shape})")
    for name in GATE_MOMENTS:
        g, r = getattr(got, name), getattr(want, name)
        if (name == "contrast" and flat) or (name == "correlation" and flat_pair):
            continue
        if not abs(g - r) <= GATE_MOMENT_RTOL * abs(r) + 1e-6:
            raise AssertionError(f"gate {name}: native {g!r} reference {r!r} ({shape})")
    if type(got.pixels) is not int or type(got.whole_frame) is not bool or type(got.grey_levels) is not int:
        raise AssertionError(f"gate: field types {got}")


def _gate_constant_sides(pixels, mask, box, whole: bool) -> tuple[bool, bool]:
    """(the sampled grey levels inside are all equal, one side of the >= 8 lag-1 pairs is
    constant), exactly: the selection of gate_reference.gate_figures_reference, recomputed."""
    from usclip_sdk.ops.gate_reference import SIDE, grey

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = (0, 0, w, h) if whole else box
    st = max(1, -(-max(y1 - y0, x1 - x0) // SIDE))
    left, right = grey(pixels[y0:y1:st, x0:x1:st]), grey(pixels[y0:y1:st, x0 + 1:x1 + 1:st])
    inside = np.ones(left.shape, bool) if whole else mask[y0:y1:st, x0:x1:st] > 0
    n = min(left.shape[1], right.shape[1])
    both = inside[:, :n] if whole else inside[:, :n] & (mask[y0:y1:st, x0 + 1:x1 + 1:st][:, :n] > 0)
    v, a, b = left[inside], left[:, :n][both], right[:, :n][both]
    return bool(v.size and np.ptp(v) == 0), bool(a.size >= 8 and (np.ptp(a) == 0 or np.ptp(b) == 0))


# What each broken argument must raise, and the argument its message must name.
_GATE_EXPECT = {
    "dtype": (TypeError, "pixels"), "not array": (TypeError, "pixels"), "ndim": (ValueError, "pixels"),
    "channels": (ValueError, "pixels"), "empty": (ValueError, "pixels"),
    "mask dtype": (TypeError, "mask"), "mask not array": (TypeError, "mask"), "mask shape": (ValueError, "mask"),
    "bbox range": (ValueError, "bbox"), "bbox type": (TypeError, "bbox"), "device": (ValueError, "device"),
}
# Breaks the native entry must reject by itself (the Python face checks the rest before it).
_GATE_NATIVE = ("dtype", "ndim", "channels", "empty", "mask dtype", "mask shape", "bbox range")


def bad_gate_case(d) -> tuple[str, dict]:
    """(what was broken, keyword arguments): a valid ``gate_figures`` call, one argument broken."""
    kw = gate_case(d)
    p = kw["pixels"]
    h, w = p.shape[:2]
    what = d.pick(list(_GATE_EXPECT))
    up = p[None] if p.ndim == 3 else p[None, None]  # (1, h, w) could be a valid 3-D frame
    bad = {
        "dtype": lambda: {"pixels": p.astype(d.pick([np.float32, np.float64, np.int8, np.int16, np.uint16,
                                                     np.bool_, np.complex64, object]))},
        "not array": lambda: {"pixels": d.pick([p.tolist(), None, bytes(np.ascontiguousarray(p)), 3])},
        "ndim": lambda: {"pixels": d.pick([p.reshape(-1), up, up[None], np.zeros((), np.uint8),
                                           np.zeros((1, h, w, 3), np.uint8)])},
        "channels": lambda: {"pixels": np.zeros((h, w, d.pick([0, 2])), np.uint8)},
        "empty": lambda: dict(zip(("pixels", "mask", "bbox"), d.pick([
            (np.zeros((0, w), np.uint8), np.zeros((0, w), np.uint8), (0, 0, w, 0)),
            (np.zeros((h, 0, 3), np.uint8), np.zeros((h, 0), np.uint8), (0, 0, 0, h)),
            (np.zeros((0, 0), np.uint8), np.zeros((0, 0), bool), (0, 0, 0, 0))]))),
        "mask dtype": lambda: {"mask": np.asarray(kw["mask"]).astype(d.pick([np.float32, np.float64, np.int8,
                                                                             np.int32, np.uint16, object]))},
        "mask not array": lambda: {"mask": d.pick([np.asarray(kw["mask"]).tolist(), None, 1])},
        "mask shape": lambda: {"mask": np.ones(d.pick([(h + 1, w), (h, w + 1), (w, h) if w != h else (h, w + 2),
                                                        (h, w, 1), (h * w,), (1, h, w)]), np.uint8)},
        "bbox range": lambda: {"bbox": d.pick([(-1, 0, w, h), (0, -1, w, h), (0, 0, w + 1, h), (0, 0, w, h + 1),
                                               (1, 0, 0, h), (0, 1, w, 0), (w + 1, 0, w + 1, h),
                                               (0, 0, 2**62, h), (-2**62, 0, w, h), (0, 0, w, 2**70)])},
        "bbox type": lambda: {"bbox": d.pick([(0.0, 0, w, h), (True, 0, w, h), (0, 0, w), (0, 0, w, h, 1), None,
                                              "full", np.array([0, 0, w, h]), (None, 0, w, h),
                                              (0, 0, np.float64(w), h), {0: 0, 1: 0, 2: w, 3: h}])},
        "device": lambda: {"device": d.pick(["gpu", "cuda:x", None, 0, "CPU", "cuda:", "cuda:-1"]
                                             + ([] if cuda_available() else ["cuda"]))},
    }[what]()
    kw.update(bad)
    return what, kw


def _raises(fn, what: str, kind, name: str, where: str) -> None:
    try:
        fn()
    except kind as e:
        if name not in str(e):
            raise AssertionError(f"{where}: broken {what!r} raised {type(e).__name__} not naming "
                                 f"{name!r}: {e}") from None
        return
    except TYPED_ERRORS as e:
        raise AssertionError(f"{where}: broken {what!r} raised {type(e).__name__} ({e}), "
                             f"expected {kind.__name__}") from None
    raise AssertionError(f"{where}: broken {what!r} was accepted")


def check_gate_rejected(what: str, kw: dict) -> None:
    """The broken call raises the expected TypeError/ValueError naming the argument, from the
    Python face and (for what it checks itself) the native entry; device='cuda' on a machine
    without CUDA raises DeviceError instead (a usclip_sdk.errors type naming the device)."""
    kind, name = _GATE_EXPECT[what]
    if what == "device" and kw["device"] == "cuda":
        kind = UsclipError
    _raises(lambda: gate_figures(**kw), what, kind, name, "gate_figures")
    bbox = kw["bbox"]
    if what in _GATE_NATIVE and not (what == "bbox range" and max(abs(v) for v in bbox) >= 2**63):
        _raises(lambda: native().gate_cpu(kw["pixels"], kw["mask"], bbox), what, kind, name, "native gate_cpu")


# The long run's case stream: seed s runs KINDS[s % len(KINDS)].
KINDS = ("preprocess valid", "similarity valid", "preprocess invalid", "similarity invalid",
         "gate valid", "gate invalid")


def run_seeded_case(seed: int) -> None:
    """Seeded case ``seed`` of the long-run stream, of kind ``KINDS[seed % 6]``. Raises
    AssertionError (or the unexpected exception) on failure."""
    d = NumpyDraw(seed)
    kind = seed % len(KINDS)
    if kind == 0:
        check_preprocess(preprocess_case(d))
    elif kind == 1:
        check_similarity(similarity_case(d))
    elif kind == 2:
        check_rejected(preprocess, *bad_preprocess_case(d))
    elif kind == 3:
        check_rejected(similarity, *bad_similarity_case(d))
    elif kind == 4:
        check_gate(gate_case(d))
    else:
        check_gate_rejected(*bad_gate_case(d))
