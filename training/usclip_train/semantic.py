"""Semantic soft labels: per-dimension tag similarity S^(k) and the batch soft-label matrix.

Ultrasound-CLIP replaces the one-hot CLIP target by a soft matrix S over the batch:

    s_ii = 1;  s_ij = (1/9) * sum_k mean_{a in T_i^k, b in T_j^k} S^(k)[a, b]   (i != j)

where T_i^k are sample i's tags in dimension k and a dimension in which either sample has no
tag adds 0 (it still counts in the 1/9). How S^(k) is computed is not published; ours is
defined here and documented in docs/training.md ("Losses and the attribute graph"):

* ``TagSimilarity.identity()``      - S^(k) = I (a pair agrees or it does not).
* ``TagSimilarity.prior()``         - label-free structure: ordinal closeness on ordered
  dimensions (Echogenicity, Vascularity) and UHAT siblings on Organ_level.
* ``TagSimilarity.cooccurrence(Y)`` - from the training split's multi-hot matrix Y: two values
  of one dimension are close when they co-occur with the same values of the *other*
  dimensions (centred cosine of their co-occurrence profiles, clipped to [0, 1]).
* ``TagSimilarity.default(Y)``      - co-occurrence blended with the prior where a prior exists.
* ``TagSimilarity.jaccard(Y)``      - the within-dimension co-occurrence Jaccard a reader of the
  release would build: |a and b on one sample| / |a or b|; 0 between the values of a
  single-label dimension (they never co-occur), so it is the identity there.

Every S^(k) is symmetric, in [0, 1], with ones on the diagonal (checked on construction), and
saves to / loads from JSON or ``.npz`` without pickle. The builder is vectorised: with M the
B x 93 multi-hot matrix whose rows are divided by the tag count within each dimension group,
sum_k M_k S^(k) M_k^T = M blockdiag(S^(1..9)) M^T - one pair of matrix products per batch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from usclip_sdk import taxonomy

__all__ = [
    "ORDINAL_POSITIONS",
    "TagSimilarity",
    "group_mean_weights",
    "soft_label_matrix",
    "SoftLabels",
]

_FORMAT = "usclip-tag-similarity"
_VERSION = 1

# Positions on an ordered axis (our reading of the scale). Mixed / inhomogeneous values are
# not on the axis; we place them in the middle so they are moderately close to everything.
ORDINAL_POSITIONS: Mapping[str, Mapping[str, float]] = {
    "Echogenicity": {
        "anechoic": 0.0, "hypoechoic": 1.0, "isoechoic": 2.0, "hyperechoic": 3.0,
        "mixed echogenicity": 1.5,
    },
    "Vascularity": {
        "no": 0.0, "reduced/diminished": 1.0, "normal/regular": 2.0, "increased": 3.0,
        "indeterminate/inhomogeneous vascularity": 1.5,
    },
}


def _check_matrix(fld: str, m: np.ndarray, n: int, atol: float = 1e-6) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (n, n):
        raise ValueError(f"similarity[{fld!r}]: expected shape ({n}, {n}), found {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"similarity[{fld!r}]: expected finite values, found NaN/inf")
    if m.min() < -atol or m.max() > 1 + atol:
        raise ValueError(f"similarity[{fld!r}]: expected values in [0, 1], found "
                         f"[{m.min():.4g}, {m.max():.4g}]")
    if not np.allclose(m, m.T, atol=atol):
        raise ValueError(f"similarity[{fld!r}]: expected a symmetric matrix")
    if not np.allclose(np.diag(m), 1.0, atol=atol):
        raise ValueError(f"similarity[{fld!r}]: expected ones on the diagonal, found {np.diag(m)}")
    m = np.clip((m + m.T) / 2, 0.0, 1.0)
    np.fill_diagonal(m, 1.0)
    return m


def _check_labels(labels: np.ndarray | Tensor, name: str = "labels") -> np.ndarray:
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    n = len(taxonomy.class_names())
    if y.ndim != 2 or y.shape[1] != n:
        raise ValueError(f"{name}: expected a multi-hot matrix N x {n}, found shape {y.shape}")
    return (y > 0).astype(np.float64)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, not elementwise
class TagSimilarity:
    """One tag-by-tag similarity matrix per UDAF dimension, in ``taxonomy.FIELDS`` order.

    ``matrices[k]`` is ``group_sizes()[k]`` square, symmetric, in [0, 1], unit diagonal.
    ``name`` and ``meta`` describe how it was made (saved with it).
    """

    matrices: tuple[np.ndarray, ...]
    name: str = "custom"
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = taxonomy.group_sizes()
        if len(self.matrices) != len(sizes):
            raise ValueError(f"matrices: expected {len(sizes)} (one per dimension), "
                             f"found {len(self.matrices)}")
        checked = tuple(_check_matrix(f, m, n)
                        for f, m, n in zip(taxonomy.FIELDS, self.matrices, sizes))
        for m in checked:
            m.setflags(write=False)
        object.__setattr__(self, "matrices", checked)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def identity(cls) -> "TagSimilarity":
        """S^(k) = I: only identical tags are similar (the soft labels become tag agreement)."""
        return cls(tuple(np.eye(n) for n in taxonomy.group_sizes()), name="identity")

    @classmethod
    def prior(cls, organ_sibling: float = 0.25) -> "TagSimilarity":
        """Label-free structure: ordinal closeness and anatomy siblings, identity elsewhere.

        Ordered dimensions (``ORDINAL_POSITIONS``): 1 - |p_a - p_b| / span, so the two ends of
        a scale are 0 apart and neighbours 2/3 close. Organ_level: two organs of the same
        UHAT body system get ``organ_sibling``.
        """
        if not 0.0 <= organ_sibling <= 1.0:
            raise ValueError(f"organ_sibling: expected a value in [0, 1], found {organ_sibling}")
        mats = []
        for d in taxonomy.DIMENSIONS:
            m = np.eye(len(d))
            if d.field in ORDINAL_POSITIONS:
                pos = np.array([ORDINAL_POSITIONS[d.field][v] for v in d.values])
                span = pos.max() - pos.min()
                m = np.clip(1.0 - np.abs(pos[:, None] - pos[None, :]) / span, 0.0, 1.0)
            elif d.field == "Organ_level":
                sys_ = np.array([taxonomy.system_of(o) for o in d.values])
                m = np.where(sys_[:, None] == sys_[None, :], organ_sibling, 0.0)
                np.fill_diagonal(m, 1.0)
            mats.append(m)
        return cls(tuple(mats), name="prior", meta={"organ_sibling": organ_sibling})

    @classmethod
    def cooccurrence(cls, labels: np.ndarray | Tensor, min_count: int = 5) -> "TagSimilarity":
        """Similarity from label co-occurrence in a (training) multi-hot matrix N x 93.

        For a value a of dimension k its profile is, for every *other* dimension m, the
        distribution P(value of m | a) - each block normalised so a 52-value dimension does
        not outweigh a 2-value one. Profiles are centred on the dimension's mean profile
        (otherwise the shared background, e.g. the organ mix, makes every pair look alike)
        and compared by cosine, clipped to [0, 1]. Values seen fewer than ``min_count`` times
        keep an identity row: too little evidence to call them close to anything.
        """
        y = _check_labels(labels)
        offs, sizes = taxonomy.group_offsets(), taxonomy.group_sizes()
        counts = y.sum(axis=0)
        mats = []
        for k, (o, n) in enumerate(zip(offs, sizes)):
            yk = y[:, o:o + n]
            blocks = []
            for m, (om, nm) in enumerate(zip(offs, sizes)):
                if m == k:
                    continue
                co = yk.T @ y[:, om:om + nm]                       # n x nm co-occurrence counts
                tot = co.sum(axis=1, keepdims=True)
                blocks.append(np.divide(co, tot, out=np.zeros_like(co), where=tot > 0))
            prof = np.concatenate(blocks, axis=1)
            seen = counts[o:o + n] >= max(min_count, 1)
            m_ = np.eye(n)
            if seen.sum() >= 2:
                p = prof[seen] - prof[seen].mean(axis=0, keepdims=True)
                norm = np.linalg.norm(p, axis=1, keepdims=True)
                p = np.divide(p, norm, out=np.zeros_like(p), where=norm > 1e-12)
                sub = np.clip(p @ p.T, 0.0, 1.0)
                m_[np.ix_(seen, seen)] = sub
                np.fill_diagonal(m_, 1.0)
            mats.append(m_)
        return cls(tuple(mats), name="cooccurrence",
                   meta={"min_count": min_count, "n_samples": int(y.shape[0])})

    @classmethod
    def jaccard(cls, labels: np.ndarray | Tensor) -> "TagSimilarity":
        """Within-dimension co-occurrence Jaccard of the values of each dimension (1 on the
        diagonal; 0 for a pair never seen, or a value never seen)."""
        y = (_check_labels(labels) > 0).astype(np.float64)
        mats = []
        for o, n in zip(taxonomy.group_offsets(), taxonomy.group_sizes()):
            yk = y[:, o:o + n]
            both = yk.T @ yk
            cnt = np.diag(both)
            either = cnt[:, None] + cnt[None, :] - both
            m = np.divide(both, either, out=np.zeros_like(both), where=either > 0)
            np.fill_diagonal(m, 1.0)
            mats.append(m)
        return cls(tuple(mats), name="jaccard", meta={"n_samples": int(y.shape[0])})

    @classmethod
    def default(cls, labels: np.ndarray | Tensor, prior_weight: float = 0.5,
                min_count: int = 5) -> "TagSimilarity":
        """The project default: co-occurrence, blended with ``prior()`` where a prior exists."""
        fields = tuple(ORDINAL_POSITIONS) + ("Organ_level",)
        out = cls.cooccurrence(labels, min_count=min_count).blend(cls.prior(), prior_weight, fields)
        return TagSimilarity(out.matrices, name="default",
                             meta={**out.meta, "prior_weight": prior_weight,
                                   "prior_fields": list(fields)})

    def blend(self, other: "TagSimilarity", weight: float,
              fields: Sequence[str] | None = None) -> "TagSimilarity":
        """(1 - weight) * self + weight * other on ``fields`` (all when None); self elsewhere."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight: expected a value in [0, 1], found {weight}")
        chosen = set(taxonomy.FIELDS if fields is None else fields)
        unknown = chosen - set(taxonomy.FIELDS)
        if unknown:
            raise ValueError(f"fields: unknown {sorted(unknown)}; expected some of {list(taxonomy.FIELDS)}")
        mats = tuple((1 - weight) * a + weight * b if f in chosen else a
                     for f, a, b in zip(taxonomy.FIELDS, self.matrices, other.matrices))
        return TagSimilarity(mats, name=f"blend({self.name},{other.name},{weight})",
                             meta={"a": dict(self.meta), "b": dict(other.meta), "weight": weight,
                                   "fields": sorted(chosen)})

    # ----------------------------------------------------------------- views
    def matrix(self, fld: str) -> np.ndarray:
        """S^(k) of one dimension by field name."""
        return self.matrices[taxonomy.FIELDS.index(taxonomy.dimension(fld).field)]

    def block_diagonal(self) -> np.ndarray:
        """The 93 x 93 block-diagonal matrix blockdiag(S^(1), ..., S^(9)) in class order."""
        n = sum(taxonomy.group_sizes())
        out = np.zeros((n, n))
        for o, m in zip(taxonomy.group_offsets(), self.matrices):
            out[o:o + len(m), o:o + len(m)] = m
        return out

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``.json`` (readable) or ``.npz`` (compact); the suffix picks the format."""
        path = Path(path)
        header = {"format": _FORMAT, "version": _VERSION, "taxonomy": taxonomy.TAXONOMY_VERSION,
                  "name": self.name, "meta": dict(self.meta), "fields": list(taxonomy.FIELDS)}
        if path.suffix == ".json":
            body = {**header, "matrices": {f: {"values": list(taxonomy.dimension(f).values),
                                               "matrix": m.tolist()}
                                           for f, m in zip(taxonomy.FIELDS, self.matrices)}}
            path.write_text(json.dumps(body, indent=1))
        elif path.suffix == ".npz":
            np.savez(path, header=np.array(json.dumps(header)),
                     **{f"S_{k}": m for k, m in enumerate(self.matrices)})
        else:
            raise ValueError(f"path: expected a .json or .npz suffix, found {path.suffix!r}")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TagSimilarity":
        """Read what ``save`` wrote (no pickle: ``allow_pickle=False`` for npz)."""
        path = Path(path)
        if path.suffix == ".json":
            body = json.loads(path.read_text())
            _check_header(body, path)
            mats = []
            for f in taxonomy.FIELDS:
                entry = body["matrices"].get(f) if isinstance(body.get("matrices"), dict) else None
                if entry is None:
                    raise ValueError(f"{path}: missing matrix for field {f!r}")
                if list(entry.get("values", [])) != list(taxonomy.dimension(f).values):
                    raise ValueError(f"{path}: values of {f!r} differ from the taxonomy's "
                                     f"{list(taxonomy.dimension(f).values)}")
                mats.append(np.asarray(entry["matrix"], dtype=np.float64))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                body = json.loads(str(z["header"]))
                _check_header(body, path)
                mats = [z[f"S_{k}"] for k in range(len(taxonomy.FIELDS))]
        else:
            raise ValueError(f"path: expected a .json or .npz suffix, found {path.suffix!r}")
        return cls(tuple(mats), name=str(body.get("name", "custom")), meta=body.get("meta", {}))


def _check_header(body: Mapping[str, object], path: Path) -> None:
    if body.get("format") != _FORMAT or body.get("version") != _VERSION:
        raise ValueError(f"{path}: expected format {_FORMAT!r} version {_VERSION}, found "
                         f"{body.get('format')!r} version {body.get('version')!r}")
    if list(body.get("fields", [])) != list(taxonomy.FIELDS):
        raise ValueError(f"{path}: fields {body.get('fields')} differ from the taxonomy's "
                         f"{list(taxonomy.FIELDS)}")


def group_mean_weights(labels: Tensor) -> Tensor:
    """Multi-hot B x 93 -> the same rows divided by the tag count within each dimension.

    Row i, group k then holds 1/|T_i^k| on its tags (all zeros when it has none), so
    M_k S^(k) M_k^T is exactly the mean over tag pairs, and a missing dimension adds 0.
    """
    sizes = torch.tensor(taxonomy.group_sizes(), device=labels.device)
    group_id = torch.repeat_interleave(torch.arange(len(sizes), device=labels.device), sizes)
    y = (labels > 0).to(labels.dtype if labels.is_floating_point() else torch.float32)
    counts = torch.zeros(y.shape[0], len(sizes), dtype=y.dtype, device=y.device)
    counts.index_add_(1, group_id, y)
    return y / counts.clamp_min(1.0)[:, group_id]


def soft_label_matrix(labels: Tensor, block: Tensor, other_labels: Tensor | None = None,
                      diagonal_offset: int | None = 0) -> Tensor:
    """The soft-label matrix S between ``labels`` (rows) and ``other_labels`` (columns).

    labels: B x 93 multi-hot; other_labels: N x 93 (default ``labels``); block: the 93 x 93
    block-diagonal similarity (``TagSimilarity.block_diagonal()``). Returns B x N with
    s_ij = (1/9) sum_k mean S^(k)[a, b] and s_{i, i + diagonal_offset} = 1 (the pair itself;
    under DDP a rank's rows start at column rank * B). ``diagonal_offset=None`` sets no ones.
    """
    n = len(taxonomy.class_names())
    for name, t in (("labels", labels), ("other_labels", other_labels)):
        if t is not None and (t.ndim != 2 or t.shape[1] != n):
            raise ValueError(f"{name}: expected a multi-hot matrix B x {n}, found {tuple(t.shape)}")
    if block.shape != (n, n):
        raise ValueError(f"block: expected shape ({n}, {n}), found {tuple(block.shape)}")
    m_rows = group_mean_weights(labels).to(block.dtype)
    m_cols = m_rows if other_labels is None else group_mean_weights(other_labels).to(block.dtype)
    s = (m_rows @ block @ m_cols.T) / len(taxonomy.FIELDS)
    if diagonal_offset is not None:
        rows = torch.arange(s.shape[0], device=s.device)
        cols = rows + diagonal_offset
        if s.shape[0] and (diagonal_offset < 0 or int(cols[-1]) >= s.shape[1]):
            raise ValueError(f"diagonal_offset: {diagonal_offset} puts the pair diagonal outside "
                             f"a {s.shape[0]} x {s.shape[1]} matrix")
        s = s.index_put((rows, cols), torch.ones_like(rows, dtype=s.dtype))
    return s


class SoftLabels(nn.Module):
    """Holds blockdiag(S^(k)) as a buffer (moves with ``.to(device)``) and builds S per batch."""

    def __init__(self, similarity: TagSimilarity | None = None) -> None:
        super().__init__()
        self.similarity = similarity or TagSimilarity.identity()
        block = torch.from_numpy(self.similarity.block_diagonal()).float()
        self.register_buffer("block", block, persistent=False)

    def forward(self, labels: Tensor, other_labels: Tensor | None = None,
                diagonal_offset: int | None = 0) -> Tensor:
        """B x 93 (and N x 93) multi-hot -> B x N soft labels (float32); see soft_label_matrix."""
        return soft_label_matrix(labels, self.block, other_labels, diagonal_offset)
