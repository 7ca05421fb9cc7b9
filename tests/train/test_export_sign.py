"""`usclip export --sign KEY`: the exported bundle carries a signature by KEY that a device trusting
its public key accepts, and a bad key fails before the export starts."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from _export_helpers import tiny_model
from usclip_sdk import signing
from usclip_sdk.bundle import Bundle
from usclip_sdk.cli import main as cli_main
from usclip_sdk.errors import BundleSignatureError


@pytest.mark.slow  # a real (tiny) export: ~10 s on a loaded box
def test_export_sign(tmp_path, capsys):
    from usclip_train.checkpoint import save_checkpoint

    model, spec, _ = tiny_model(tmp_path)
    ck = save_checkpoint(tmp_path / "ckpt", model, spec, step=1, epoch=0, save_rng=False)
    keys = tmp_path / "keys"
    keys.mkdir()
    pub = signing.generate_key(keys / "k.pem")
    (keys / "bad.pem").write_text("not a key\n")
    assert cli_main(["export", str(ck), "--out", str(tmp_path / "b"), "--sign", str(keys / "bad.pem")]) == 1
    assert not (tmp_path / "b").exists()  # refused before any export work
    assert cli_main(["export", str(ck), "--out", str(tmp_path / "b"), "--zip", "--sign", str(keys / "k.pem")]) == 0
    assert f"signed={pub.key_id}" in capsys.readouterr().out
    with Bundle.open(tmp_path / "b.zip", trusted_keys=[str(keys / "k.pem.pub")]) as b:
        assert b.verified and b.signature.key_id == pub.key_id
    other = signing.generate_key(keys / "other.pem")
    with pytest.raises(BundleSignatureError):
        Bundle.open(tmp_path / "b.zip", trusted_keys=[other])
