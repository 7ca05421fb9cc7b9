"""The triage layer: every status from a constructed input, calibration in the bundle, frozen
streams, not-applicable descriptors (usclip_sdk.quality / calibration / triage)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from usclip_sdk import Classifier, taxonomy
from usclip_sdk.bundle import Bundle
from usclip_sdk.bundle_manifest import CalibrationSpec, OODSpec, manifest_to_dict, parse_manifest
from usclip_sdk.calibrate import calibrate_bundle, write_calibrated
from usclip_sdk.calibration import ece, fit_ood, fit_temperature, ood_scores
from usclip_sdk.errors import BundleError, InvalidInputError
from usclip_sdk.prediction import STATUSES, Attribute
from usclip_sdk.quality import FrozenDetector, assess
from usclip_sdk.region import Region, detect_region, full_region
from usclip_sdk.triage import LESION_DESCRIPTORS, mark_applicable

from gate_frames import NOT_IMAGES, scan





# bundle_path, clf: the tiny bundle and a Classifier on it (tests/conftest.py)


def _calibrated(bundle_path: Path, out: Path, *, reference=None, ood_threshold=1.0,
                thresholds: float = 0.01, temperature: float = 1.0, offsets=None) -> Path:
    with Bundle.open(bundle_path) as b:
        fields = tuple(dict.fromkeys(f for f, _ in b.class_names))
        spec = CalibrationSpec({f: temperature for f in fields}, {f: thresholds for f in fields}, offsets or {},
                               None if reference is None else OODSpec("mahalanobis", "ood_reference.npy",
                                                                      ood_threshold, 0.95, 0.1), {"test": True})
        return write_calibrated(b, spec, reference, out)


# ------------------------------------------------------------------ gate and statuses
@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_gate_rejects_each_kind_of_non_image_with_the_check_named(clf, name):
    frame, check = NOT_IMAGES[name]
    p = clf.classify(frame)
    assert p.status == "no_image"
    assert any(m.startswith(check + ":") for m in p.reasons["failed"]), p.reasons["failed"]
    assert all(not p.attributes[f].applicable for f in LESION_DESCRIPTORS)


def test_gate_accepts_scanner_like_frames_and_their_crops():
    for seed in range(6):
        im = scan(seed, gain=40.0 + 20 * seed)
        r = detect_region(im)
        assert assess(im, r).ok, assess(im, r).failed
        x0, y0, x1, y1 = r.bbox  # a tightly cropped scan has no screen: region "full", still an image
        crop = np.ascontiguousarray(im[y0:y1, x0:x1])
        assert assess(crop, full_region(*crop.shape[:2])).ok


def test_a_failed_tiny_region_is_not_taken_for_a_missing_image():
    im = scan(0)
    mask = np.zeros(im.shape[:2], np.uint8)
    mask[215:222, 60:260] = 1  # a 7-pixel band of black screen below the scan: 1.9 % of the frame
    q = assess(im, Region((60, 215, 260, 222), mask, "linear", im.shape[:2]))
    assert q.ok and q.figures["measured_on"] == "frame"


def test_bundle_without_calibration_gets_status_from_the_gate_alone(clf):
    assert clf.bundle.manifest.calibration is None and clf.calibration is None
    p = clf.classify(scan(0))
    assert p.status == "ok" and p.reasons["calibrated"] is False
    assert "ood" not in p.reasons and "confidence" not in p.reasons
    assert p.reasons["quality"]["region"] == "linear" and p.reasons["failed"] == []
    d = json.loads(p.to_json())
    assert d["status"] == "ok" and d["attributes"]["Organ_level"]["applicable"] is True


def test_out_of_distribution_and_uncertain_from_a_calibrated_bundle(clf, bundle_path, tmp_path):
    ref_emb = clf.embed_image([scan(s) for s in range(3)])
    d = ref_emb.shape[1]
    reference = np.concatenate([ref_emb.mean(0)[None], 1e4 * np.eye(d)]).astype(np.float32)
    inside = ood_scores(ref_emb, reference[0], reference[1:]).max()
    bright = scan(9, gain=200.0)  # a scan the reference never saw: far in embedding space
    outside = float(ood_scores(clf.embed_image(bright), reference[0], reference[1:])[0])
    assert outside > 4 * inside
    thr = float(np.sqrt(inside * outside))
    cal = Classifier(_calibrated(bundle_path, tmp_path / "ood", reference=reference, ood_threshold=thr),
                     backend="onnxruntime")
    ok, ood = cal.classify(scan(1)), cal.classify(bright)
    assert ok.status == "ok" and ok.reasons["calibrated"] is True
    assert ood.status == "out_of_distribution"
    assert ood.reasons["ood"]["score"] > ood.reasons["ood"]["threshold"] == pytest.approx(thr, rel=1e-3)
    assert cal.classify(NOT_IMAGES["black"][0]).status == "no_image"  # the gate comes first
    unsure = Classifier(_calibrated(bundle_path, tmp_path / "unsure", thresholds=1.0), backend="onnxruntime")
    p = unsure.classify(scan(1))
    assert p.status == "uncertain"
    assert all(c["score"] < c["threshold"] for c in p.reasons["confidence"].values())
    assert all(not p.attributes[f].applicable for f in LESION_DESCRIPTORS) and p.attributes["Organ_level"].applicable


def test_stream_reports_a_frozen_feed_within_a_second_of_frames(clf):
    live = [scan(s) for s in range(12)]
    statuses = [p.status for p in clf.stream(live + [live[-1]] * 30, smoothing=0.0)]
    assert "frozen" not in statuses[:12]
    first = statuses.index("frozen")  # 30 repeats = one second at 30 frames/s
    assert 12 <= first <= 12 + 11 and statuses[-1] == "frozen"
    det = FrozenDetector(after=3)
    r = detect_region(live[0])
    assert not any(det.update(f, r) for f in live)  # speckle changes every frame


def test_statuses_are_documented():
    assert set(STATUSES) == {"ok", "no_image", "frozen", "out_of_distribution", "uncertain"}
    text = (Path(__file__).parents[2] / "docs" / "triage.md").read_text()
    assert all(f'"{s}"' in text for s in STATUSES)


def test_lesion_descriptors_not_applicable_on_normal_frames():
    attrs = {f: Attribute(f, taxonomy.dimension(f).values[0], 0.5, ()) for f in taxonomy.FIELDS}
    normal = dict(attrs, Diagnosis=Attribute("Diagnosis", "normal appearance", 0.9, ()))
    marked = mark_applicable(normal, "ok")
    assert [f for f, a in marked.items() if not a.applicable] == list(LESION_DESCRIPTORS)
    assert all(a.applicable for a in mark_applicable(attrs, "ok").values())  # a nodule: all apply


# ------------------------------------------------------------------ calibration in the bundle
def test_calibration_round_trips_through_the_bundle_and_is_applied(clf, bundle_path, tmp_path):
    k = {f: n for f, n in zip(clf.fields, clf.group_sizes)}
    offsets = {"Diagnosis": [0.5, -0.25, 0.0, 1.0, -1.25]}
    emb = clf.embed_image([scan(s) for s in range(12)])
    ref, thr = fit_ood(emb)
    path = _calibrated(bundle_path, tmp_path / "cal.zip", reference=ref, ood_threshold=thr,
                       thresholds=0.2, temperature=0.5, offsets=offsets)
    with Bundle.open(path) as b:
        c = b.manifest.calibration
        assert c.temperatures == {f: 0.5 for f in k} and c.confidence_thresholds["Shape"] == 0.2
        assert c.ood.threshold == pytest.approx(thr) and c.offsets["Diagnosis"] == tuple(offsets["Diagnosis"])
        assert parse_manifest(manifest_to_dict(b.manifest)) == b.manifest
        assert np.array_equal(np.load(b.file("ood_reference.npy")), ref)
    cal = Classifier(path, backend="onnxruntime")
    p = cal.classify(scan(2))
    logits = clf.bundle.logit_scale * cal.embed_image(scan(2))[0] @ clf.class_embeddings[:k["Diagnosis"]].T
    z = logits / 0.5 + np.asarray(offsets["Diagnosis"])
    expect = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    got = dict(p.topk)
    assert [got[v] for v in taxonomy.dimension("Diagnosis").values] == pytest.approx(expect, abs=1e-4)
    assert p.attributes["Diagnosis"].score == pytest.approx(expect.max(), abs=1e-4)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(extra=1), "unknown keys"),
    (lambda c: c["temperatures"].update(Diagnosis=0.0), "calibration.temperatures.Diagnosis"),
    (lambda c: c["confidence_thresholds"].update(Nope=0.5), "not a taxonomy dimension"),
    (lambda c: c.update(offsets={"Diagnosis": [0.0, 1.0]}), "calibration.offsets.Diagnosis"),
    (lambda c: c["ood"].update(method="knn"), "calibration.ood.method"),
    (lambda c: c["ood"].update(reference="missing.npy"), "no entry in 'files'"),
])
def test_calibration_section_is_strictly_validated(clf, bundle_path, tmp_path, edit, match):
    ref = np.concatenate([np.zeros((1, 16)), np.eye(16)]).astype(np.float32)
    with Bundle.open(_calibrated(bundle_path, tmp_path / "v", reference=ref)) as b:
        d = manifest_to_dict(b.manifest)
    edit(d["calibration"])
    with pytest.raises(BundleError, match=match):
        parse_manifest(d)


def _labelled_split(data: Path, n: int = 24) -> Path:
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records, lines = [], []
    for i in range(n):
        name = f"f{i}.png"
        cv2.imwrite(str(data / "images" / name), scan(i, gain=float(rng.uniform(50, 120))))
        records.append({"media_name": name, "Diagnosis": "normal appearance" if i % 2 else "cyst",
                        "Organ_level": "Liver"})
        lines.append(json.dumps({"image": name, "caption": "x"}))
    (data / "valid.jsonl").write_text("\n".join(lines) + "\n")
    (data / "full_data.json").write_text(json.dumps(records))
    return data


def test_usclip_calibrate_command(bundle_path, tmp_path, capsys):
    from usclip_sdk.cli import main

    data = _labelled_split(tmp_path / "data", n=12)
    assert main(["calibrate", str(bundle_path), "--data", str(data), "--out", str(tmp_path / "c.zip"),
                 "--backend", "onnxruntime", "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["frames"] == 12 and fig["dimensions"]["Diagnosis"]["n"] == 12
    with Bundle.open(tmp_path / "c.zip") as b:
        assert b.manifest.calibration.ood.threshold == pytest.approx(fig["ood_threshold"])
    with pytest.raises(InvalidInputError, match="no test.jsonl"):
        calibrate_bundle(bundle_path, data, tmp_path / "d", split="test")
    # the normal operating point's options reach the fit (12 frames: too few to move it)
    assert main(["calibrate", str(bundle_path), "--data", str(data), "--out", str(tmp_path / "s.zip"),
                 "--backend", "onnxruntime", "--json", "--normal-point", "sensitivity",
                 "--lesion-sensitivity", "0.9"]) == 0
    point = json.loads(capsys.readouterr().out)["dimensions"]["Diagnosis"].get("normal_operating_point")
    assert point is None or (point["fitted"] is False and point["offset"] == 0.0)
    with pytest.raises(SystemExit):
        main(["calibrate", str(bundle_path), "--data", str(data), "--out", str(tmp_path / "x.zip"),
              "--normal-point", "roc"])


def test_usclip_calibrate_fits_a_labelled_split(bundle_path, tmp_path):
    data = _labelled_split(tmp_path / "data")
    out, fig = calibrate_bundle(bundle_path, data, tmp_path / "cal", backend="onnxruntime")
    assert fig["frames"] == 24 and set(fig["dimensions"]) == {"Diagnosis", "Organ_level"}
    with Bundle.open(out) as b:
        c = b.manifest.calibration
        assert c.fitted_on["n_frames"] == 24 and c.ood.accept == 0.95
        assert set(c.temperatures) == set(taxonomy.FIELDS)
    p = Classifier(out, backend="onnxruntime").classify(scan(3))
    assert p.reasons["calibrated"] and "ood" in p.reasons


# ------------------------------------------------------------------ fitting functions
def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 6))
    p = np.exp(logits / 2.5)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(6, p=row) for row in p])
    t = fit_temperature(logits, np.eye(6, dtype=bool)[y])
    assert t == pytest.approx(2.5, rel=0.1)
    conf = p.max(1)
    assert ece(conf, y == p.argmax(1)) < 0.03 < ece(np.minimum(conf * 1.6, 1.0), y == p.argmax(1))


def test_ood_threshold_accepts_95_percent_of_new_in_distribution_frames():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 32))
    draw = lambda n: rng.normal(size=(n, 8)) @ basis + 0.1 * rng.normal(size=(n, 32))  # noqa: E731
    ref, thr = fit_ood(draw(600))
    fresh = ood_scores(draw(4000), ref[0], ref[1:])
    assert 0.92 <= float(np.mean(fresh <= thr)) <= 0.98
    far = ood_scores(draw(200) + 3.0, ref[0], ref[1:])
    assert float(np.mean(far > thr)) > 0.95


def test_quality_figures_are_json_ready():
    q = assess(scan(0), detect_region(scan(0)))
    assert json.loads(json.dumps(dict(q.figures))) == dict(q.figures)
    assert dataclasses.is_dataclass(q) and q.ok


def test_fit_follows_the_label_support_the_classifier_scores():
    from usclip_sdk.calibration import fit_calibration

    rng = np.random.default_rng(0)
    values = taxonomy.dimension("Diagnosis").values
    classes = rng.normal(size=(5, 16)).astype(np.float32)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    y = rng.integers(0, 5, 300)
    emb = classes[y] + 0.8 * rng.normal(size=(300, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    tags = [{"Diagnosis": (values[i],)} for i in y]
    names = [("Diagnosis", v) for v in values]
    _, _, all_fig = fit_calibration(emb, tags, classes, names, 10.0)
    _, _, fig = fit_calibration(emb, tags, classes, names, 10.0, support={"Diagnosis": values[:3]})
    assert all_fig["Diagnosis"]["n"] == 300 and fig["Diagnosis"]["n"] == int(np.sum(y < 3))
    assert fig["Diagnosis"]["acc_before"] > all_fig["Diagnosis"]["acc_before"]  # 3-way, not 5-way
