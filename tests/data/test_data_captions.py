"""Report captions: varied for the same labels, every stated value correct, no value stated
that the labels lack, every taxonomy value expressible, deterministic given the generator."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from usclip_sdk import taxonomy as tx
from usclip_data.synth import caption_lexicon as lex
from usclip_data.synth.captions import caption, mentions

THYROID = {"Diagnosis": ("nodule",), "Body_system_level": ("Head and Neck",),
           "Organ_level": ("Thyroid gland",), "Shape": ("oval",), "Margins": ("well-defined",),
           "Echogenicity": ("hypoechoic",), "InternalCharacteristics": ("calcifications",),
           "PosteriorAcoustics": ("shadowing",), "Vascularity": ("increased",)}


def _random_labels(rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    out = {}
    for d in tx.DIMENSIONS:
        k = int(rng.choice([0, 1, 1, 1, 2]))
        out[d.field] = tuple(d.values[int(i)] for i in rng.choice(len(d), k, replace=False))
    return out


def test_many_distinct_captions_for_the_same_labels():
    caps = [caption(THYROID, np.random.default_rng(i)) for i in range(300)]
    assert len(set(caps)) >= 200
    organ_names = Counter(n for c in caps for n in lex.ORGAN_NAMES["Thyroid gland"]
                          if re.search(rf"(?<![\w-]){n}(?![\w-])", c.lower()))
    assert len(organ_names) >= 4  # "thyroid", "thyroid gland", "right thyroid lobe", ...
    styles = Counter(c.split(" ")[0] for c in caps)
    assert len(styles) >= 6


def test_same_generator_state_same_caption():
    assert caption(THYROID, np.random.default_rng(7)) == caption(THYROID, np.random.default_rng(7))


def test_stated_values_are_right_and_absent_values_never_stated():
    rng = np.random.default_rng(0)
    stated = Counter()
    for _ in range(3000):
        labels = _random_labels(rng)
        text = caption(labels, rng)
        said = mentions(text)
        for f in tx.FIELDS:
            extra = set(said[f]) - set(labels[f])
            assert not extra, (labels, text, f, extra)
            stated.update((f, v) for v in said[f])
    # every value of every dimension gets said somewhere (the lexicon covers the taxonomy)
    missing = [(f, v) for f, v in tx.class_names() if stated[(f, v)] == 0]
    assert not missing


def test_absent_values_by_plain_words():
    """The same property without the read-back: explicit wrong words never appear."""
    wrong = {"Echogenicity": r"\b(anechoic|hyperechoic|isoechoic|mixed echogenicity)\b",
             "Margins": r"ill-defined|indistinct|poorly",
             "Diagnosis": r"\b(cysts?|mass|fluid|unremarkable|normal appearance)\b",
             "PosteriorAcoustics": r"enhancement|through-transmission",
             "Vascularity": r"\b(no|reduced|diminished|normal) (vascularity|flow|internal)",
             "Shape": r"\b(round|lobulated|irregular|tubular|flattened)\b"}
    for i in range(400):
        text = caption(THYROID, np.random.default_rng(i)).lower()
        for field, pat in wrong.items():
            assert not re.search(pat, text), (field, text)


def test_some_attributes_left_unsaid_but_something_always_said():
    counts = Counter()
    for i in range(400):
        said = mentions(caption(THYROID, np.random.default_rng(i)))
        assert said["Diagnosis"] == ("nodule",) or said["Organ_level"]
        counts.update(f for f in tx.FIELDS if said[f])
    for f in ("Shape", "Margins", "Echogenicity", "Vascularity"):
        assert 0.5 * 400 < counts[f] < 0.95 * 400, (f, counts[f])


def test_normal_multi_tag_and_empty_labels():
    normal = {"Diagnosis": ("normal appearance",), "Organ_level": ("Liver",)}
    caps = [caption(normal, np.random.default_rng(i)) for i in range(100)]
    assert all(mentions(c)["Diagnosis"] == ("normal appearance",) for c in caps)
    assert not any(re.search(r"\b(nodule|cyst|mass|collection)\b", c.lower()) for c in caps)
    multi = {"Diagnosis": ("cyst", "mass"), "Organ_level": ("Adnexa",),
             "Shape": ("oval", "lobulated"), "InternalCharacteristics": ("septations", "solid components")}
    said = [mentions(caption(multi, np.random.default_rng(i))) for i in range(100)]
    assert any(set(s["Shape"]) == {"oval", "lobulated"} for s in said)
    assert any(set(s["Diagnosis"]) == {"cyst", "mass"} for s in said)
    assert isinstance(caption({}, np.random.default_rng(0)), str)
    assert caption({"Organ_level": "Breast"}, np.random.default_rng(1))  # a plain string works too


def test_lexicon_phrases_are_unique():
    phrases = [p for p, _, _ in lex.all_phrases()]
    dup = [p for p, n in Counter(phrases).items() if n > 1]
    assert not dup
    assert set(lex.ORGAN_NAMES) == set(tx.organs())
    assert set(lex.SYSTEM_NAMES) == set(tx.dimension("Body_system_level").values)


def test_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        caption(THYROID, 3)
    with pytest.raises(TypeError, match="labels"):
        caption(["nodule"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="Colour"):
        caption({"Colour": ("red",)}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Shape"):
        caption({"Shape": ("triangular",)}, np.random.default_rng(0))
