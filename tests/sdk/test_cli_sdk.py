"""The SDK's CLI commands (classify, info, bench) on a tiny real-ONNX bundle."""
from __future__ import annotations

import json

import cv2
import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from test_classifier import screen  # noqa: E402

from usclip_sdk.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(make_tiny_bundle(tmp_path_factory.mktemp("cli") / "tiny.zip", as_zip=True))


def test_classify_images_video_and_a_bad_file(bundle, tmp_path, capsys):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), screen(i))
    vw = cv2.VideoWriter(str(tmp_path / "cine.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(4):
        vw.write(screen(i))
    vw.release()
    (tmp_path / "bad.png").write_bytes(b"junk")
    paths = [str(tmp_path / n) for n in ("f0.png", "bad.png", "f1.png", "cine.avi")]
    rc = main(["classify", *paths, "--bundle", bundle, "--json"])
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert rc == 1  # one file failed ...
    assert "bad.png" in out.err
    assert [r["file"] for r in rows] == ["f0.png", "f1.png"] + [f"cine.avi[{i}]" for i in range(4)]
    assert all(set(r["attributes"]) and r["timings_ms"]["total"] > 0 for r in rows)  # ... the rest ran


def test_classify_table_with_custom_labels(bundle, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), screen(3))
    assert main(["classify", str(tmp_path / "a.png"), "--bundle", bundle,
                 "--labels", "benign cyst", "malignant mass"]) == 0
    out = capsys.readouterr().out
    assert "a.png" in out and ("benign cyst" in out or "malignant mass" in out)


def test_info_json(bundle, capsys):
    assert main(["info", "--bundle", bundle, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"]["model"] == "tiny-test" and info["bundle"]["classes"] == 93
    assert info["backends"]["onnxruntime"] == "ok" and info["tensorrt"] is None
    assert info["native"]["cpu_kernels"] is True


def test_bench_json_and_bad_args(bundle, capsys):
    assert main(["bench", "--bundle", bundle, "--iters", "5", "--warmup", "1", "--batch", "2",
                 "--frame", "240x320", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["batch"] == 2 and res["frames_per_s"] > 0
    assert set(res["stages_ms"]) >= {"preprocess", "encode", "similarity", "total"}
    assert res["stages_ms"]["total"]["p99"] >= res["stages_ms"]["total"]["p50"]
    assert main(["bench", "--bundle", bundle, "--iters", "4", "--warmup", "1", "--stream",
                 "--frame", "240x320", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "stream"
    assert main(["bench", "--bundle", bundle, "--frame", "huge"]) == 1
    assert "--frame" in capsys.readouterr().err
