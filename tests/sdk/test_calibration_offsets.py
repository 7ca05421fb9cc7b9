"""Class offsets are kept only when they raise top-1 accuracy on frames they were not fitted on."""
from __future__ import annotations

import numpy as np

from usclip_sdk import calibration as cal


def _frames(n: int = 300, k: int = 4, bias: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1.0, (n, k)) + 2.0 * np.eye(k)[y]
    logits[:, 0] += bias  # a prior the prompts imply: class 0 over-called
    return logits, np.eye(k, dtype=bool)[y]


def test_offsets_that_remove_a_wrong_prior_are_kept() -> None:
    logits, tags = _frames(bias=3.0)
    keep, with_b, without = cal.offsets_help(logits, tags)
    assert keep and with_b > without + 0.2  # raw answers mostly "class 0"


def test_offsets_that_cost_accuracy_are_dropped(monkeypatch) -> None:
    logits, tags = _frames()
    real = cal.fit_temperature_offsets

    def harmful(lg, tg, steps=1500, lr=0.05):  # whatever is fitted, push class 0 up
        t, b = real(lg, tg, steps=50)
        return t, b + np.array([4.0, 0.0, 0.0, 0.0])
    monkeypatch.setattr(cal, "fit_temperature_offsets", harmful)
    keep, with_b, without = cal.offsets_help(logits, tags)
    assert not keep and with_b < without
    class_names = [("Margins", v) for v in "abcd"]
    emb = np.eye(4, dtype=np.float32)[tags.argmax(axis=1)] + 0.3 * np.random.default_rng(1).normal(size=(300, 4))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    tag_dicts = [{"Margins": ["abcd"[j]]} for j in tags.argmax(axis=1)]
    spec, _, figures = cal.fit_calibration(emb, tag_dicts, np.eye(4, dtype=np.float32), class_names, 10.0)
    assert spec.offsets["Margins"] == [0.0, 0.0, 0.0, 0.0]
    f = figures["Margins"]
    assert f["offsets"].startswith("dropped") and f["acc_after"] == f["acc_before"]
    assert f["oof_acc_with_offsets"] < f["oof_acc_without_offsets"]


def test_too_few_frames_keep_the_offsets_unjudged() -> None:
    logits, tags = _frames(n=20)
    assert cal.offsets_help(logits, tags) == (True, None, None)
