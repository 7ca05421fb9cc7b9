"""Soft labels and tag similarity: hand-computed values, the multi-tag / missing-tag rules,
symmetry, and the vectorised builder against a slow per-sample loop."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.semantic import (  # noqa: E402
    SoftLabels, TagSimilarity, group_mean_weights, soft_label_matrix)

N = len(taxonomy.class_names())


def multi_hot(*records):
    """One row per record: {field: value or [values]}."""
    y = torch.zeros(len(records), N)
    for i, rec in enumerate(records):
        for f, vals in rec.items():
            for v in [vals] if isinstance(vals, str) else vals:
                y[i, taxonomy.class_index(f, v)] = 1.0
    return y


def naive_soft_labels(y, sim):
    """The formula read literally: loops over samples, dimensions and tag pairs."""
    offs, sizes = taxonomy.group_offsets(), taxonomy.group_sizes()
    b = y.shape[0]
    out = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            if i == j:
                out[i, j] = 1.0
                continue
            total = 0.0
            for k, (o, n) in enumerate(zip(offs, sizes)):
                ti = [a for a in range(n) if y[i, o + a] > 0]
                tj = [c for c in range(n) if y[j, o + c] > 0]
                if ti and tj:
                    total += sum(sim.matrices[k][a, c] for a in ti for c in tj) / (len(ti) * len(tj))
            out[i, j] = total / 9.0
    return out


# -------------------------------------------------------------------- hand-computed values
def test_hand_example_identity_and_rules():
    y = multi_hot(
        {"Diagnosis": "nodule", "Echogenicity": "hypoechoic"},
        {"Diagnosis": "nodule", "Echogenicity": ["hypoechoic", "isoechoic"]},
        {"Diagnosis": "cyst"},
        {"Diagnosis": "nodule"},
        {"Diagnosis": "nodule", "Echogenicity": ["hypoechoic", "isoechoic"]},
    )
    s = SoftLabels(TagSimilarity.identity())(y)
    # 0 vs 1: Diagnosis agrees (1), Echogenicity mean(I[hypo,hypo], I[hypo,iso]) = 1/2; /9.
    assert s[0, 1].item() == pytest.approx(1.5 / 9)
    # 0 vs 2: different diagnosis, 2 has no echogenicity -> 0.
    assert s[0, 2].item() == pytest.approx(0.0)
    # 0 vs 3: a missing dimension adds 0 but still counts in the 1/9 (not 1/1).
    assert s[0, 3].item() == pytest.approx(1 / 9)
    # 1 vs 4: both multi-tag: mean over 4 pairs = (1 + 0 + 0 + 1) / 4.
    assert s[1, 4].item() == pytest.approx((1 + 0.5) / 9)
    assert torch.equal(torch.diag(s), torch.ones(5))


def test_hand_example_ordinal_prior():
    y = multi_hot(
        {"Diagnosis": "nodule", "Echogenicity": "hypoechoic"},
        {"Diagnosis": "nodule", "Echogenicity": ["hypoechoic", "isoechoic"]},
        {"Echogenicity": "hyperechoic", "Vascularity": "no"},
        {"Echogenicity": "anechoic", "Vascularity": "increased"},
    )
    s = SoftLabels(TagSimilarity.prior())(y)
    # hypo-iso are one step apart on a 3-step scale: 1 - 1/3.
    assert s[0, 1].item() == pytest.approx((1 + (1 + 2 / 3) / 2) / 9)
    # the two ends of both scales: 0.
    assert s[2, 3].item() == pytest.approx(0.0, abs=1e-7)
    # hypo vs hyper: two steps -> 1/3.
    assert s[0, 2].item() == pytest.approx((1 / 3) / 9)


def test_prior_values():
    p = TagSimilarity.prior(organ_sibling=0.25)
    e = p.matrix("Echogenicity")
    idx = taxonomy.dimension("Echogenicity").index
    assert e[idx("anechoic"), idx("hyperechoic")] == 0.0
    assert e[idx("mixed echogenicity"), idx("hypoechoic")] == pytest.approx(1 - 0.5 / 3)
    v, vi = p.matrix("Vascularity"), taxonomy.dimension("Vascularity").index
    assert v[vi("no"), vi("increased")] == 0.0
    assert v[vi("no"), vi("reduced/diminished")] == pytest.approx(2 / 3)
    o, oi = p.matrix("Organ_level"), taxonomy.dimension("Organ_level").index
    assert o[oi("Liver"), oi("Spleen")] == 0.25
    assert o[oi("Liver"), oi("Kidney and ureter")] == 0.0
    assert np.array_equal(p.matrix("Shape"), np.eye(7))


def test_cooccurrence_hand_made_profiles():
    recs = ([{"Shape": "round", "Margins": "well-defined", "Echogenicity": "anechoic"}] * 10
            + [{"Shape": "oval", "Margins": "well-defined", "Echogenicity": "anechoic"}] * 10
            + [{"Shape": "irregular", "Margins": "ill-defined/indistinct",
                "Echogenicity": "hypoechoic"}] * 10
            + [{"Shape": "nodular", "Margins": "well-defined", "Echogenicity": "anechoic"}] * 2)
    c = TagSimilarity.cooccurrence(multi_hot(*recs), min_count=5)
    sh, i = c.matrix("Shape"), taxonomy.dimension("Shape").index
    # round and oval have identical centred profiles: cosine 1.
    assert sh[i("round"), i("oval")] == pytest.approx(1.0)
    # irregular's centred profile is the exact opposite: cosine -1, clipped to 0.
    assert sh[i("round"), i("irregular")] == pytest.approx(0.0)
    # nodular is seen 2 < min_count times: identity row despite the same profile.
    assert sh[i("round"), i("nodular")] == 0.0
    # Margins has two values, whose centred profiles are always opposite -> identity.
    assert np.allclose(c.matrix("Margins"), np.eye(2))


def test_default_blends_prior_only_where_one_exists():
    train = _random_labels(400, 8, p=0.1)
    co, pr = TagSimilarity.cooccurrence(train), TagSimilarity.prior()
    d = TagSimilarity.default(train, prior_weight=0.5)
    assert np.allclose(d.matrix("Shape"), co.matrix("Shape"))
    for f in ("Echogenicity", "Vascularity", "Organ_level"):
        assert np.allclose(d.matrix(f), (co.matrix(f) + pr.matrix(f)) / 2)
    with pytest.raises(ValueError, match="fields"):
        co.blend(pr, 0.5, fields=["Colour"])


# -------------------------------------------------------------------- structure
def _random_labels(b, seed, p=0.06):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(b, N, generator=g) < p).float()
    y[0] = 0  # a sample with no tag at all
    return y


def test_vectorised_equals_naive_loop():
    train = _random_labels(400, 1, p=0.08)
    sim = TagSimilarity.default(train, min_count=3)
    y = _random_labels(12, 2)
    fast = SoftLabels(sim)(y).double().numpy()
    assert np.allclose(fast, naive_soft_labels(y.numpy(), sim), atol=1e-6)


def test_symmetric_bounded_unit_diagonal():
    sim = TagSimilarity.default(_random_labels(300, 3, p=0.1))
    s = SoftLabels(sim)(_random_labels(16, 4))
    assert torch.allclose(s, s.T, atol=1e-6)
    assert torch.equal(torch.diag(s), torch.ones(16))
    assert s.min() >= 0 and s.max() <= 1


def test_rectangular_rows_with_offset():
    sim = TagSimilarity.prior()
    y = _random_labels(8, 5, p=0.1)
    full = SoftLabels(sim)(y)
    rows = SoftLabels(sim)(y[4:], y, diagonal_offset=4)
    assert torch.allclose(rows, full[4:], atol=1e-6)
    with pytest.raises(ValueError, match="diagonal_offset"):
        SoftLabels(sim)(y[4:], y, diagonal_offset=5)


def test_group_mean_weights_rows():
    y = multi_hot({"Echogenicity": ["hypoechoic", "isoechoic"], "Diagnosis": "cyst"}, {})
    m = group_mean_weights(y)
    assert m[0, taxonomy.class_index("Echogenicity", "hypoechoic")] == 0.5
    assert m[0, taxonomy.class_index("Diagnosis", "cyst")] == 1.0
    assert m[1].abs().sum() == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels"):
        soft_label_matrix(torch.zeros(3, 92), torch.eye(N))
    with pytest.raises(ValueError, match="block"):
        soft_label_matrix(torch.zeros(3, N), torch.eye(N - 1))
    mats = list(TagSimilarity.identity().matrices)
    bad = np.eye(5)
    bad[0, 1] = 0.5
    with pytest.raises(ValueError, match="symmetric"):
        TagSimilarity(tuple(mats[:5] + [bad] + mats[6:]))
    with pytest.raises(ValueError, match="diagonal"):
        TagSimilarity(tuple(mats[:5] + [0.5 * np.eye(5)] + mats[6:]))
    with pytest.raises(ValueError, match="shape"):
        TagSimilarity(tuple(mats[:5] + [np.eye(4)] + mats[6:]))
    with pytest.raises(ValueError, match="one per dimension"):
        TagSimilarity(tuple(mats[:8]))


# -------------------------------------------------------------------- persistence
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_load_round_trip(tmp_path, suffix):
    sim = TagSimilarity.default(_random_labels(300, 6, p=0.1))
    back = TagSimilarity.load(sim.save(tmp_path / f"s{suffix}"))
    assert np.allclose(back.block_diagonal(), sim.block_diagonal())
    assert back.name == sim.name


def test_load_rejects_foreign_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ValueError, match="format"):
        TagSimilarity.load(p)
    q = tmp_path / "x.npz"
    np.savez(q, header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):  # object arrays need pickle, which load refuses
        TagSimilarity.load(q)
    with pytest.raises(ValueError, match="suffix"):
        TagSimilarity.load(tmp_path / "x.pt")


def test_jaccard_is_within_dimension_cooccurrence():
    from usclip_sdk import taxonomy
    from usclip_train.semantic import TagSimilarity

    y = np.zeros((4, len(taxonomy.class_names())), np.float32)
    ic = taxonomy.group_offsets()[taxonomy.FIELDS.index("InternalCharacteristics")]
    dx = taxonomy.group_offsets()[0]
    y[0, [ic, ic + 1]] = 1   # cystic + calcifications together
    y[1, ic] = 1             # cystic alone
    y[2, ic + 1] = 1         # calcifications alone
    y[:, dx] = 1             # Diagnosis is single-label: its values never co-occur
    y[3, dx] = 0
    y[3, dx + 1] = 1
    s = TagSimilarity.jaccard(y)
    k = taxonomy.FIELDS.index("InternalCharacteristics")
    assert s.matrices[k][0, 1] == pytest.approx(1 / 3)   # |both| 1 / |either| 3
    assert np.allclose(s.matrices[0], np.eye(taxonomy.group_sizes()[0]))
