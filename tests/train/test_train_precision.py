"""The training precision on CPU: bf16 without native support warns (it is emulated, far slower)."""
from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch")

from usclip_train import train  # noqa: E402
from usclip_train.config import RunConfig  # noqa: E402


def test_bf16_on_a_cpu_without_native_bf16_warns_and_names_the_fix(monkeypatch):
    monkeypatch.setattr(train, "_cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="precision=fp32"):
        _, _, prec = train._autocast(RunConfig(precision="bf16"), "cpu")
    assert prec == "bf16"  # still honoured: the user asked for it


def test_bf16_on_a_cpu_with_native_bf16_is_quiet(monkeypatch):
    monkeypatch.setattr(train, "_cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train._autocast(RunConfig(precision="bf16"), "cpu")


@pytest.mark.parametrize("flags,native", [("avx2 avx512f avx512bw avx512_bf16", True), ("avx2 amx_bf16 amx_tile", True),
                                          ("avx2 avx512f avx512bw avx512vl", False), ("avx2 fma", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\n")
    assert train._cpu_has_native_bf16(str(p)) is native


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        train._autocast(RunConfig(precision="fp16"), "cpu")
