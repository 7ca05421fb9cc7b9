"""bench/ceiling.py: exact tag-set scoring and the --lesion-crop box; bench/ablation.py: --variants,
the paired report and --report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_helpers import bench_module

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


def _ceiling():
    return bench_module("ceiling")


def _labels(**kw):
    from usclip_sdk import taxonomy as tx

    rec = {f: () for f in tx.FIELDS}
    rec.update(kw)
    return rec


def test_multi_label_dimension_becomes_tag_sets_and_scores_exact_sets() -> None:
    c = _ceiling()
    ic = "InternalCharacteristics"
    labels = {"a": _labels(**{ic: ("solid components", "calcifications"), "Margins": ("well-defined",)}),
              "b": _labels(**{ic: ("solid components",)}),
              "c": _labels(**{ic: ("calcifications", "solid components")}),  # same set, other order
              "d": _labels(**{ic: ("cystic components", "septations")})}
    classes = c.class_sets(["a", "b", "d"], labels)
    assert classes[ic] == [("calcifications", "solid components"), ("cystic components", "septations"),
                           ("solid components",)]
    assert classes["Margins"] == [("well-defined",), ("ill-defined/indistinct",)]  # single-label: its values
    t = c.Targets(["a", "b", "c", "d"], labels, classes)
    assert t.single[ic].tolist() == [0, 2, 0, 1]
    assert t.single["Margins"].tolist() == [0, -1, -1, -1]  # untagged frames do not count
    logits = {f: torch.zeros(4, len(classes[f])) for f in classes}
    logits[ic][:, 2] = 1.0  # always "solid components" alone
    res = c.score(logits, t, t, classes, [True, False, False, False])
    r = res[ic]
    assert r["accuracy"] == 0.25 and r["majority_value"] == "calcifications + solid components"
    assert r["majority_baseline"] == 0.5 and r["formulation"].startswith("softmax over the 3 tag sets")
    assert r["with_doppler"] == {"accuracy": 0.0, "n": 1} and r["without_doppler"]["n"] == 3


@pytest.mark.parametrize("organ,f0,depth", [("liver", 3.5, 140.0), ("thyroid", 10.0, 38.0)])
def test_lesion_crop_box_is_centred_on_the_rendered_lesion(organ: str, f0: float, depth: float) -> None:
    """--lesion-crop's box (screen px from the stored truth) against the test helpers' own
    mm -> px mapping, on a convex and a linear frame: same centre, side 1.2 x the lesion."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from synth_helpers import make_case, to_px
    from usclip_data.synth import render_view

    c = _ceiling()
    f = render_view(make_case(organ, f0=f0, depth=depth, extent=0.4), 0, 5, size=(256, 256))
    les = f.params["lesion"]
    cx, cy, half = c._lesion_box_px(f.params)
    u, v = to_px(f.params, *les["center_mm"])
    assert abs(cx - u) < 2.0 and abs(cy - v) < 2.0, (cx, cy, u, v)
    diameter_px = 2 * max(les["axes_mm"]) / f.params["mm_per_px"]
    assert 0.5 * diameter_px < half < 0.8 * diameter_px, (half, diameter_px)
    normal = dict(f.params, lesion=None)  # no lesion: the region's centre
    x0, y0, x1, y1 = normal["region_box"]
    assert c._lesion_box_px(normal)[:2] == ((x0 + x1) / 2, (y0 + y1) / 2)


def test_ablation_variant_subset_splits_on_semicolons() -> None:
    ab = bench_module("ablation")
    table = ab.variants([1.0, 3.0])
    got = ab.select(table, "full, lambda=3; CLIP (InfoNCE)")
    assert list(got) == ["CLIP (InfoNCE)", "full, lambda=3"]  # the table's order, commas kept
    with pytest.raises(ValueError, match="unknown"):
        ab.select(table, "CLIP (InfoNCE),+ soft labels")  # a comma list is one unknown name


def test_ablation_pairs_only_shared_seeds_and_reads_the_ordering_step_by_step() -> None:
    ab = bench_module("ablation")

    def row(seed, acc, shape):
        return {"seed": seed, "AvgAcc": acc, "per_dimension": {"Shape": shape}}

    results = {"CLIP (InfoNCE)": [row(0, 0.60, 0.30), row(1, 0.62, 0.32), row(2, 0.64, 0.34)],
               "+ soft labels": [row(0, 0.61, 0.30), row(1, 0.63, 0.33), row(2, 0.65, 0.35)],
               "full, lambda=1": [row(0, 0.59, 0.31), row(1, 0.60, 0.30)]}  # seed 2 not run
    p = ab.paired(results, "full, lambda=1", "+ soft labels")
    assert p["seeds"] == 2 and p["AvgAcc"][0] == pytest.approx(-0.025)
    lo, hi = p["AvgAcc"][1:]
    half = 12.706 * (0.005 * 2 ** 0.5) / 2 ** 0.5  # t with 1 df x sd (0.0071) / sqrt(2 seeds)
    assert (lo, hi) == (pytest.approx(-0.025 - half), pytest.approx(-0.025 + half))
    assert ab.ordering_steps(results) == [("full, lambda=1", "+ soft labels")]  # no + graph run
    text = ab.report(results)
    assert "| full, lambda=1 - + soft labels | -2.5 [" in text
    results["full, lambda=3"] = [row(0, 0.58, 0.29), row(1, 0.61, 0.31)]
    assert ab.ordering_steps(results) == [("full, lambda=1", "+ soft labels"), ("full, lambda=3", "+ soft labels"),
                                          ("full, lambda=3", "full, lambda=1")]
    assert ab.paired(results, "full, lambda=3", "full, lambda=1")["AvgAcc"][0] == pytest.approx(0.0)


def test_ablation_report_mode_reads_a_finished_json_and_names_a_bad_one(tmp_path, monkeypatch, capsys) -> None:
    """``--report FILE`` prints the report of finished rows without training; a file that is not
    an ablation.json is a usage error that names it, not a traceback."""
    ab = bench_module("ablation")
    rows = {"CLIP (InfoNCE)": [{"seed": 0, "AvgAcc": 0.6, "per_dimension": {}}],
            "+ soft labels": [{"seed": 0, "AvgAcc": 0.65, "per_dimension": {}}]}
    good = tmp_path / "ablation.json"
    good.write_text(json.dumps({"config": {}, "results": rows}))
    monkeypatch.setattr("sys.argv", ["ablation.py", "--report", str(good)])
    assert ab.main() == 0
    assert "+ soft labels" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    for argv in (["--report", str(bad)], ["--data", "x"]):
        monkeypatch.setattr("sys.argv", ["ablation.py", *argv])
        with pytest.raises(SystemExit) as e:
            ab.main()
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "--data and --out are required" in err


def test_ceiling_cnn_pooling_choice() -> None:
    c = _ceiling()
    x = torch.randn(2, 3, 64, 64)
    for pool, width in (("avgmax", 384), ("avg", 192), ("attn", 384)):
        m = c.MultiHeadCNN({"Shape": 7}, 64, pool)
        assert m.heads["Shape"].in_features == width and m(x)["Shape"].shape == (2, 7)
    assert m(x)["_where"].shape == (2, 4)  # attn: per-cell logits of the 2 x 2 map at 64 px
    z = c.ZoomCNN({"Shape": 7}, 64)
    out = z(x)
    assert out["Shape"].shape == (2, 7) and out["_box"].shape == (2, 3)
    assert bool(((out["_box"] > 0) & (out["_box"] < 1)).all())
    with pytest.raises(ValueError, match="pool"):
        c.MultiHeadCNN({"Shape": 7}, 64, "gem")


def test_ceiling_lesion_targets_and_box_quality() -> None:
    """--pool attn's per-cell target and --pool zoom's square come from the stored truth; a
    perfect prediction scores IoU 1, a shifted one less."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import json

    from synth_helpers import make_case
    from usclip_data.synth import render_view

    c = _ceiling()
    f = render_view(make_case("thyroid", f0=10.0, depth=38.0, extent=0.4), 0, 5, size=(256, 256))
    root = ROOT / "tests"  # not written to: _params is patched below
    params = {"a.png": f.params, "b.png": dict(f.params, lesion=None)}
    c._params = lambda _root: params
    cells = c.lesion_cells(["a.png", "b.png"], root, 128, 4)
    assert cells[0].sum() == pytest.approx(1.0) and float(cells[1].sum()) == 0.0
    boxes = c.lesion_boxes(["a.png", "b.png"], root)
    assert boxes[0, 0] == 1.0 and boxes[1].abs().sum() == 0.0
    cx, cy = float(boxes[0, 1]), float(boxes[0, 2])
    grid = cells[0].view(4, 4)  # the cell holding the square's centre carries the most weight
    assert grid.argmax() == int(cy * 4) * 4 + int(cx * 4), (grid, cx, cy)
    perfect = c.box_quality(boxes[:, 1:], boxes)
    assert perfect["n"] == 1 and perfect["iou_mean"] == 1.0
    shifted = boxes[:, 1:].clone()
    shifted[:, 0] += boxes[0, 3]  # one half side to the right: IoU 1/3
    assert c.box_quality(shifted, boxes)["iou_mean"] == pytest.approx(1 / 3, abs=0.01)
    json.dumps(perfect)  # stored in the result JSON
