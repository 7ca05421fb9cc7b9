"""The INT8 export quiets onnxruntime's quantizer without touching the root logger: its level and
handlers are the same after the call, and none of the quantizer's advice reached them."""
from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("onnx")

from sdk_bundle import SIZE, _image_onnx  # noqa: E402

from usclip_train.export.int8 import quantize_image_encoder  # noqa: E402


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_int8_export_leaves_the_root_logger_alone(tmp_path):
    src = tmp_path / "image_encoder.onnx"
    src.write_bytes(_image_onnx(0))
    root = logging.getLogger()
    collect = _Collect()
    root.addHandler(collect)
    old_level = root.level
    root.setLevel(logging.INFO)  # an application that logs INFO: the quantizer would print its advice
    try:
        before = list(root.handlers)
        rng = np.random.default_rng(0)
        calib = [rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32) for _ in range(8)]
        out = quantize_image_encoder(src, tmp_path / "image_encoder_int8.onnx", calib)
        assert out.is_file()
        assert root.level == logging.INFO and list(root.handlers) == before  # no basicConfig, no level change
        leaked = [r for r in collect.records if r.name in ("root", "onnxruntime.quantization")]
        assert not leaked, [r.getMessage()[:80] for r in leaked]
        import sys

        assert sys.modules["onnxruntime.quantization.quantize"].logging is logging  # restored after the call
        # the check above can fail: the quantizer does log on the root logger when not routed
        from onnxruntime.quantization import quantize_dynamic

        quantize_dynamic(str(src), str(tmp_path / "plain_int8.onnx"))
        assert [r for r in collect.records if r.name == "root"], "the quantizer logged nothing on its own"
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
