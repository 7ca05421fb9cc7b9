"""`usclip export --calib-data DIR`: the exported bundle carries the triage calibration fitted on
DIR's validation split (docs/triage.md), and a signature made after it verifies."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from _export_helpers import tiny_model
from usclip_sdk import signing, taxonomy
from usclip_sdk.bundle import Bundle
from usclip_sdk.cli import main as cli_main


def _dataset(root, n: int = 20):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records, lines = [], []
    for i in range(n):
        frame = np.zeros((96, 128, 3), np.uint8)
        speckle = cv2.GaussianBlur(rng.rayleigh(1.0, (64, 96)).astype(np.float32), (0, 0), 1.2)
        frame[16:80, 16:112] = np.clip(speckle * rng.uniform(50, 120), 0, 255)[..., None]
        cv2.imwrite(str(root / "images" / f"f{i}.png"), frame)
        records.append({"media_name": f"f{i}.png", "Diagnosis": "cyst" if i % 2 else "normal appearance"})
        lines.append(json.dumps({"image": f"f{i}.png", "caption": "x"}))
    (root / "valid.jsonl").write_text("\n".join(lines) + "\n")
    (root / "full_data.json").write_text(json.dumps(records))


@pytest.mark.slow  # a real (tiny) export: ~10 s on a loaded box
def test_export_calibrates_then_signs(tmp_path):
    from usclip_train.checkpoint import save_checkpoint

    model, spec, _ = tiny_model(tmp_path)
    ck = save_checkpoint(tmp_path / "ckpt", model, spec, step=1, epoch=0, save_rng=False)
    _dataset(tmp_path / "data")
    pub = signing.generate_key(tmp_path / "k.pem")
    assert cli_main(["export", str(ck), "--out", str(tmp_path / "b"), "--zip", "--calib-data",
                     str(tmp_path / "data"), "--sign", str(tmp_path / "k.pem")]) == 0
    with Bundle.open(tmp_path / "b.zip", trusted_keys=[str(tmp_path / "k.pem.pub")]) as b:
        c = b.manifest.calibration
        assert b.verified and b.signature.key_id == pub.key_id
        assert set(c.temperatures) == set(taxonomy.FIELDS) and c.fitted_on["n_frames"] == 20
        assert c.ood is not None and c.ood.reference in b.manifest.files
