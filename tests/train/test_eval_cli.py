"""``usclip eval`` on a tiny checkpoint and a tiny US-365K-layout folder: the command runs,
writes its files, and reports the same numbers as ``evaluate()`` called from Python."""
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("usclip_data.us365k")

from _export_helpers import tiny_model  # noqa: E402
from train_fixtures import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from usclip_train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("evalcli")
    data = make_dataset(root / "data", n=32, size=32)
    model, spec, _ = tiny_model(root)
    from usclip_data.us365k import US365K
    from usclip_train.train import label_support

    ck = save_checkpoint(root / "ck", model, spec, step=0, epoch=0,
                         label_support=label_support(US365K(data, "train")))
    return root, data, ck


def test_cli_eval_writes_results_and_matches_python_api(tiny, capsys):
    from usclip_sdk.cli import main
    from usclip_train.checkpoint import load_model
    from usclip_train.evaluate import class_weights, evaluate, from_open_clip

    root, data, ck = tiny
    out = root / "out"
    fields = ["Diagnosis", "Echogenicity", "Margins"]
    rc = main(["eval", str(ck), "--data", str(data), "--out", str(out), "--linear-probe", "--probe-c", "1",
               "--fields", *fields, "--batch-size", "8", "--device", "cpu", "--no-plots"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_pairs"] == 4 and saved["split"] == "test"
    assert set(saved["tasks"]) == {"zeroshot_classification", "zeroshot_retrieval", "linear_probe"}
    zs = saved["tasks"]["zeroshot_classification"]
    assert zs["dimensions_averaged"] == ["Diagnosis", "Echogenicity"]  # Margins untagged here
    assert saved["tasks"]["linear_probe"]["per_dimension"]["Diagnosis"]["n_train"] == 24
    assert printed["AvgAcc"] == pytest.approx(saved["metrics"]["AvgAcc"])
    assert "Zero-shot classification" in (out / "report.md").read_text()

    # the same numbers from Python, twice, with the class weights computed once and reused
    model, preprocess, tokenizer = load_model(ck)
    enc = from_open_clip(model, preprocess, tokenizer, batch_size=16)
    w = class_weights(enc.encode_text, fields)
    runs = [evaluate(enc, data, "test", class_weights=w) for _ in range(2)]
    for k in ("AvgAcc", "AvgRecall", "i2t_R@1", "t2i_R@5"):
        assert runs[0]["metrics"][k] == pytest.approx(saved["metrics"][k], abs=1e-9)
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[1]["timing_s"]["class_weights"] < 0.01  # reused, not re-encoded


def test_cli_eval_rejects_missing_model(tiny, capsys):
    from usclip_sdk.cli import main

    root, data, _ = tiny
    rc = main(["eval", str(root / "nope"), "--data", str(data)])
    assert rc == 1
    assert "does not exist" in capsys.readouterr().err


def test_trimmed_text_batches_give_the_same_embeddings(tiny):
    from usclip_train.checkpoint import load_model
    from usclip_train.evaluate import from_open_clip

    _, _, ck = tiny
    model, preprocess, tokenizer = load_model(ck)
    texts = ["a cyst.", "an ultrasound image showing a mixed cystic and solid mass with posterior "
             "acoustic shadowing and increased vascularity", "nodule"] * 3
    a = from_open_clip(model, preprocess, tokenizer, batch_size=4).encode_text(texts)
    b = from_open_clip(model, preprocess, tokenizer, batch_size=4, trim_padding=False).encode_text(texts)
    assert a.shape == b.shape == (9, 16)
    assert abs(a - b).max() < 1e-5


def test_bundle_eval_matches_the_checkpoint(tiny, capsys):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from usclip_sdk.cli import main
    from usclip_data.us365k import US365K
    from usclip_train.checkpoint import load_model
    from usclip_train.data import FrameTransform
    from usclip_train.evaluate import class_weights, from_open_clip
    from usclip_train.evaluate.bundle_encoders import bundle_class_weights, from_bundle, is_bundle
    from usclip_train.export.bundle_writer import export_checkpoint

    root, data, ck = tiny
    bundle_path = export_checkpoint(ck, root / "bundle")
    assert is_bundle(bundle_path) and not is_bundle(ck)
    rc = main(["eval", str(bundle_path), "--data", str(data), "--out", str(root / "bout"),
               "--device", "cpu", "--no-plots", "--fields", "Diagnosis", "Echogenicity"])
    assert rc == 0
    saved = json.loads((root / "bout" / "results.json").read_text())
    assert saved["model"].startswith("bundle:") and saved["n_pairs"] == 4
    capsys.readouterr()

    # what ships (ONNX towers, SDK preprocessing, stored class embeddings) vs the checkpoint
    model, preprocess, tokenizer = load_model(ck)
    torch_enc = from_open_clip(model, preprocess, tokenizer,
                               image_transform=FrameTransform(preprocess, data / "masks"))
    onnx_enc, bundle = from_bundle(bundle_path, device="cpu")
    # the bundle declares exactly the values its training split carries (train.label_support)
    from usclip_train.train import label_support

    assert bundle.manifest.label_support == {f: tuple(v) for f, v in
                                             label_support(US365K(data, "train")).items()}
    assert set(bundle.manifest.label_support) == {"Diagnosis", "Echogenicity"}
    try:
        paths = [s.image_path for s in US365K(data, "test")]
        a, b = torch_enc.encode_image(paths), onnx_enc.encode_image(paths)
        assert np.min(np.sum(a * b, axis=1)) > 0.995  # only pixel rounding differs
        texts = ["a cyst.", "an anechoic nodule with posterior enhancement"]
        assert np.abs(torch_enc.encode_text(texts) - onnx_enc.encode_text(texts)).max() < 1e-4
        from usclip_sdk import taxonomy

        held_out = {d.field: d.held_out_templates for d in taxonomy.DIMENSIONS}  # what export uses
        shipped, here = bundle_class_weights(bundle), class_weights(torch_enc.encode_text, templates=held_out)
        assert all(np.abs(shipped[f] - here[f]).max() < 1e-4 for f in here)
    finally:
        bundle.close()
