"""Zero-shot weights, the linear probe, the end-to-end runner (files written) and the
open_clip glue, on hand-made embeddings whose answers are known."""
import json
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy as tx  # noqa: E402
from usclip_train.evaluate import (Encoders, ProbeConfig, class_weights, evaluate,  # noqa: E402
                                   flat_class_embeddings, from_open_clip, linear_probe)
from usclip_train.evaluate.zeroshot import class_prompts, split_flat  # noqa: E402

D = 112  # 93 orthonormal class directions + one private direction per test image


def _basis():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(D, D)))
    return {name: q[:, i] for i, name in enumerate(tx.class_names())}, q[:, 93:]


BASIS, SPARE = _basis()
PROMPT_OF = {p: (f, v) for f, per in class_prompts().items()
             for v, ps in zip(tx.dimension(f).values, per) for p in ps}


def fake_encode_text(texts):
    """Prompts map to their class direction (plus a per-template offset that averages out);
    captions ('cap:<i>') map to a stored vector."""
    out = []
    for t in texts:
        if t in PROMPT_OF:
            jitter = 0.01 * (hash(t) % 7) * np.roll(BASIS[PROMPT_OF[t]], 1)
            out.append(BASIS[PROMPT_OF[t]] + jitter)
        else:
            out.append(CAPTIONS[t])
    return np.stack(out)


CAPTIONS: dict = {}


@dataclass(frozen=True)
class S:
    image_path: str
    caption: str
    labels: dict = field(default_factory=dict)


def test_class_weights_are_mean_of_normalised_prompts_renormalised():
    calls = []

    def enc(texts):
        calls.append(len(texts))
        return np.stack([np.arange(1, 5, dtype=float) * (1 + i % 3) + (i % 2) for i, _ in enumerate(texts)])

    w = class_weights(enc, fields=["Margins"])
    assert calls == [8]  # one batched call: 2 classes x 4 templates
    raw = enc(class_prompts(["Margins"])["Margins"][0])
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    want = unit.mean(0) / np.linalg.norm(unit.mean(0))
    assert w["Margins"][0] == pytest.approx(want, abs=1e-6)
    assert np.linalg.norm(w["Margins"], axis=1) == pytest.approx(np.ones(2), abs=1e-6)


def test_flat_embeddings_round_trip_in_class_names_order():
    w = class_weights(fake_encode_text)
    flat = flat_class_embeddings(w)
    assert flat.shape == (93, D)
    i = tx.class_index("Echogenicity", "hyperechoic")
    assert float(flat[i] @ BASIS[("Echogenicity", "hyperechoic")]) > 0.99
    back = split_flat(flat)
    assert all(np.allclose(back[f], w[f], atol=1e-6) for f in tx.FIELDS)


def _dataset():
    """12 images: Diagnosis known for all (image 11 looks like the wrong class), Margins for
    half (one with both tags), the other dimensions untagged."""
    samples, img = [], {}
    diags = tx.dimension("Diagnosis").values
    for i in range(12):
        d = diags[i % 5]
        labels = {f: () for f in tx.FIELDS}
        labels["Diagnosis"] = (d,)
        shown = [("Diagnosis", diags[(i + 1) % 5] if i == 11 else d)]
        if i < 6:
            one = ("well-defined",) if i % 2 else ("ill-defined/indistinct",)
            m = ("well-defined", "ill-defined/indistinct") if i == 0 else one
            labels["Margins"] = m
            shown.append(("Margins", m[-1]))
        v = sum(BASIS[s] for s in shown) + 0.3 * SPARE[:, i]  # private part: images differ
        img[f"im{i}.png"] = v / np.linalg.norm(v)
        CAPTIONS[f"cap:{i}"] = img[f"im{i}.png"] + 0.05 * np.random.default_rng(i).normal(size=D)
        samples.append(S(f"im{i}.png", f"cap:{i}", labels))
    enc = Encoders(encode_image=lambda paths: np.stack([img[p] for p in paths]),
                   encode_text=fake_encode_text, name="hand-made")
    return samples, enc


def test_evaluate_end_to_end_known_answers(tmp_path):
    samples, enc = _dataset()
    r = evaluate(enc, samples, out_dir=tmp_path, fields=["Diagnosis", "Margins", "Vascularity"], ks=(1, 5))
    zs = r["tasks"]["zeroshot_classification"]
    assert zs["dimensions_averaged"] == ["Diagnosis", "Margins"]
    assert zs["per_dimension"]["Diagnosis"]["acc1"] == pytest.approx(11 / 12)
    assert zs["per_dimension"]["Margins"]["acc1"] == pytest.approx(1.0)
    assert zs["per_dimension"]["Margins"]["n_multi_tag"] == 1
    assert r["metrics"]["AvgAcc"] == pytest.approx((11 / 12 + 1.0) / 2)
    # Diagnosis recall: class of image 11 (diags[1]) has 3 samples, 2 right -> (4 * 1 + 2/3) / 5
    assert r["metrics"]["AvgRecall"] == pytest.approx(((4 + 2 / 3) / 5 + 1.0) / 2)
    assert r["metrics"]["i2t_R@1"] == 1.0 and r["metrics"]["t2i_R@1"] == 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metrics"] == pytest.approx(r["metrics"])
    report = (tmp_path / "report.md").read_text()
    assert "AvgAcc" in report and "confusion_Diagnosis.png" in report
    for name in ("recall_at_k.png", "confusion_Diagnosis.png", "confusion_Margins.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not (tmp_path / "confusion_Vascularity.png").exists()
    d = zs["per_dimension"]["Diagnosis"]  # calibration: ECE and its reliability bins (issue 13)
    assert 0.0 <= d["ece"] <= 1.0 and sum(b["n"] for b in d["reliability"]) == 12
    assert "## Calibration" in report and (tmp_path / "reliability.png").stat().st_size > 1000


def test_evaluate_reuses_given_class_weights_without_encoding_prompts():
    samples, enc = _dataset()
    w = class_weights(fake_encode_text, ["Diagnosis"])
    texts_seen = []
    enc2 = Encoders(enc.encode_image, lambda t: (texts_seen.extend(t), fake_encode_text(t))[1])
    r = evaluate(enc2, samples, class_weights=w, retrieval=False, plots=False)
    assert texts_seen == []
    assert "zeroshot_retrieval" not in r["tasks"]
    assert r["metrics"]["AvgAcc"] == pytest.approx(11 / 12)


def test_linear_probe_separates_separable_data_and_handles_tags():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    ytr, yte = rng.integers(0, 3, 90), rng.integers(0, 3, 30)
    xtr = centres[ytr] + rng.normal(size=(90, 16))
    xte = centres[yte] + rng.normal(size=(30, 16))
    ttr = np.zeros((90, 5), bool)
    ttr[np.arange(90), ytr] = True
    ttr[0, (ytr[0] + 1) % 3] = True          # a multi-tag training sample
    ttr[1] = False                             # an untagged one
    tte = np.eye(5, dtype=bool)[yte]
    one = np.zeros((90, 2), bool)
    one[:, 0] = True                           # only one class in training: skipped
    r = linear_probe(xtr, {"Diagnosis": ttr, "Margins": one}, xte,
                     {"Diagnosis": tte, "Margins": np.eye(2, dtype=bool)[yte % 2]},
                     ProbeConfig(c_sweep=(0.1, 1.0), max_iter=100))
    d = r["per_dimension"]["Diagnosis"]
    assert d["acc1"] == 1.0 and d["mean_per_class_recall"] == 1.0
    assert d["n_train"] == 89 and d["C"] in (0.1, 1.0)
    assert "skipped" in r["per_dimension"]["Margins"]
    assert r["dimensions_averaged"] == ["Diagnosis"]


def test_linear_probe_at_chance_on_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    t = np.eye(2, dtype=bool)[rng.integers(0, 2, 200)]
    r = linear_probe(x[:150], {"Margins": t[:150]}, x[150:], {"Margins": t[150:]},
                     ProbeConfig(c_sweep=(1.0,), max_iter=50))
    assert 0.25 < r["AvgAcc"] < 0.75


def test_fit_logistic_reaches_the_regularised_optimum():
    # stationarity of C * sum CE + |W|^2 / 2 (the conditions sklearn's lbfgs solution meets):
    # C * X^T (P - Y) + W = 0 and C * sum_i (P - Y) = 0
    from usclip_train.evaluate.linear_probe import fit_logistic

    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5))
    y = np.eye(3)[rng.integers(0, 3, 60)]
    y[0] = [0.5, 0.5, 0.0]  # a soft (multi-tag) target
    w, b = fit_logistic(x, y, c=0.7)
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.abs(0.7 * x.T @ (p - y) + w).max() < 1e-4
    assert np.abs(0.7 * (p - y).sum(0)).max() < 1e-4


class TinyClip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Linear(3 * 8 * 8, 6)
        self.text = torch.nn.Embedding(50, 6)

    def encode_image(self, x):
        assert not self.training
        return self.visual(x.flatten(1))

    def encode_text(self, ids):
        return self.text(ids).mean(1)


def test_from_open_clip_batches_images_and_text(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))

    def preprocess(im):
        return torch.from_numpy(np.asarray(im.resize((8, 8)), np.float32) / 255).permute(2, 0, 1)

    def tokenizer(texts):
        return torch.tensor([[len(t) % 50, 1, 2] for t in texts])

    model = TinyClip().train()
    enc = from_open_clip(model, preprocess, tokenizer, batch_size=2)
    img = enc.encode_image(paths)
    txt = enc.encode_text(["a", "bb", "ccc"])
    assert img.shape == (5, 6) and txt.shape == (3, 6)
    assert np.allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    assert model.training  # restored
    with torch.no_grad():
        model.eval()
        want = model.encode_image(preprocess(Image.open(paths[3]).convert("RGB"))[None])[0].numpy()
    assert img[3] == pytest.approx(want / np.linalg.norm(want), abs=1e-5)


def test_image_loader_uses_stored_mask_and_can_detect_instead(tmp_path):
    import cv2
    from usclip_sdk.pixels import PreprocessSpec
    from usclip_train.evaluate.images import image_loader

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    frame = np.full((40, 60, 3), 200, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:50] = 255
    cv2.imwrite(str(tmp_path / "images" / "a.png"), frame)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    spec = PreprocessSpec(image_size=(16, 16), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    t = image_loader(spec)
    path = str(tmp_path / "images" / "a.png")
    assert t.region(path, frame).bbox == (20, 10, 50, 30)
    x = t(path)
    assert tuple(x.shape) == (3, 16, 16)
    assert float(x.min()) == pytest.approx(200 / 255, abs=1e-3)  # the crop is all inside the mask
    assert image_loader(spec, use_stored_masks=False).region(path, frame).kind != "stored"
