"""Packaging conventions: python -m, py.typed, the native stub, LICENSE/CHANGELOG, documented
environment variables, dependency hints, and logging that never touches the root logger."""
from __future__ import annotations

import ast
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import usclip_sdk
from usclip_sdk import _deps, settings

ROOT = Path(__file__).resolve().parents[2]
PKG = Path(usclip_sdk.__file__).parent
CUDA_ONLY = {"current_device", "device_free", "device_malloc", "memcpy_dtoh", "memcpy_htod", "pointer_device",
             "stream_synchronize"}


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "usclip_sdk", "--help"], capture_output=True, text=True,
                         timeout=120, cwd="/")
    assert out.returncode == 0 and out.stdout.startswith("usage: usclip") and "--verbose" in out.stdout


def test_typed_markers_ship_with_the_package():
    assert (PKG / "py.typed").is_file() and (PKG / "_native.pyi").is_file()


def _stub_functions() -> dict[str, list[str]]:
    tree = ast.parse((PKG / "_native.pyi").read_text())
    return {f.name: [a.arg for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}


def _doc_params(obj) -> list[str]:
    # pybind11's first docstring line: name(arg: type, ...) -> ret
    sig = (obj.__doc__ or "").strip().splitlines()[0]
    inner = sig[sig.index("(") + 1:sig.rindex(") ->")]
    return re.findall(r"(?:^|, )(\w+):", re.sub(r"\[[^\]]*\]", "", re.sub(r"\[[^\[\]]*\]", "", inner)))


def test_native_stub_matches_the_built_module():
    from usclip_sdk import ops

    native = pytest.importorskip("usclip_sdk._native")
    stub = _stub_functions()
    built = {n: getattr(native, n) for n in dir(native) if not n.startswith("__") and callable(getattr(native, n))}
    assert set(built) <= set(stub), f"not in _native.pyi: {sorted(set(built) - set(stub))}"
    absent = set(stub) - set(built)
    assert absent <= CUDA_ONLY and (not absent or not ops.build_info()["cuda_kernels"]), sorted(absent)
    for name, fn in built.items():
        if "(*args, **kwargs)" in (fn.__doc__ or ""):
            continue  # a CPU-only build defines the CUDA runtime calls as generic stubs that raise
        assert stub[name] == _doc_params(fn), name


def test_license_changelog_and_documented_environment():
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "## [0.1.0]" in (ROOT / "CHANGELOG.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for var in ("USCLIP_BUNDLE", "USCLIP_THREADS", "USCLIP_ENGINE_CACHE", "USCLIP_LOG_LEVEL"):
        assert f"`{var}`" in readme, var
    assert "pip install usclip-sdk" not in readme  # not on PyPI: the README says how to install instead
    for doc in ("deployment.md", "jetson.md"):
        assert "pip install usclip-sdk" not in (ROOT / "docs" / doc).read_text(), doc


def test_missing_opencv_and_onnxruntime_name_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"pip install '\.\[cpu\]'"):
        _deps._import_cv2()
    monkeypatch.setattr(_deps.platform, "machine", lambda: "aarch64")
    assert "libopencv-python" in _deps.install_hint("cv2") and "JetPack" in _deps.install_hint("onnxruntime")
    from usclip_sdk.backends import onnxruntime as ortb

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert "onnxruntime-gpu" in ortb.unavailable_reason()


def test_environment_settings(monkeypatch):
    monkeypatch.setenv("USCLIP_THREADS", "3")
    assert settings.env_threads() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("USCLIP_THREADS", bad)
        with pytest.raises(ValueError, match="USCLIP_THREADS"):
            settings.env_threads()
    monkeypatch.delenv("USCLIP_THREADS")
    assert settings.env_threads() is None
    monkeypatch.setenv("USCLIP_LOG_LEVEL", "debug")
    assert settings.env_log_level() == "DEBUG"
    monkeypatch.setenv("USCLIP_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="USCLIP_LOG_LEVEL"):
        settings.env_log_level()


def test_onnxruntime_backend_takes_usclip_threads(monkeypatch, tmp_path):
    pytest.importorskip("onnx")
    from sdk_bundle import make_tiny_bundle

    from usclip_sdk.backends.onnxruntime import OnnxRuntimeBackend
    from usclip_sdk.bundle import Bundle

    monkeypatch.setenv("USCLIP_THREADS", "2")
    with Bundle.open(make_tiny_bundle(tmp_path / "tiny")) as b:
        assert OnnxRuntimeBackend(b, device="cpu").threads == 2
        assert OnnxRuntimeBackend(b, device="cpu", threads=1).threads == 1  # the argument wins


def test_library_logging_never_touches_the_root_logger(tmp_path):
    code = """
import logging, sys
root = logging.getLogger()
before = (root.level, list(root.handlers))
import usclip_sdk
from usclip_sdk.cli import main
lib = logging.getLogger("usclip_sdk")
assert any(isinstance(h, logging.NullHandler) for h in lib.handlers)
main(["-vv", "info"])
assert (root.level, list(root.handlers)) == before, (root.level, root.handlers)
assert lib.level == logging.DEBUG and any(getattr(h, "_usclip_cli", False) for h in lib.handlers)
main(["-v", "info"])  # called again: one CLI handler, not two
assert sum(getattr(h, "_usclip_cli", False) for h in lib.handlers) == 1 and lib.level == logging.INFO
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    assert "usclip INFO" in out.stderr or "usclip DEBUG" in out.stderr or out.stderr == ""


def test_bad_log_level_is_a_clear_cli_error(monkeypatch, capsys):
    from usclip_sdk.cli import main

    monkeypatch.setenv("USCLIP_LOG_LEVEL", "LOUD")
    assert main(["info"]) == 2
    assert "USCLIP_LOG_LEVEL" in capsys.readouterr().err
    for name in ("usclip_sdk", "usclip_data", "usclip_train"):  # leave no CLI handler to later tests
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if getattr(h, "_usclip_cli", False)]:
            lg.removeHandler(h)
        lg.setLevel(logging.NOTSET)
