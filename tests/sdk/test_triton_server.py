"""A real Triton server serves the exported repository.

Starts the ``tritonserver`` binary that the ``nvidia-pytriton`` wheel ships (Triton 2.51, with
only the Python backend inside) on 127.0.0.1 with ``usclip export-triton``'s model repository,
waits for readiness, sends frames through ``tritonclient.http`` and checks that the pipeline
model answers what ``Classifier.classify`` answers on the same frames. The onnxruntime and
TensorRT encoder models cannot load on that server (it has neither backend): the test asserts
exactly that, and that nothing else in the repository failed. The server is stopped here.
CI installs the wheel (README: Develop and test); elsewhere the test is skipped when it is
absent, and fails in CI (CI=true) so a missing install step cannot pass silently.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
httpclient = pytest.importorskip("tritonclient.http")

from sdk_bundle import make_tiny_bundle  # noqa: E402
from test_classifier import screen  # noqa: E402

from usclip_sdk.bundle import Bundle  # noqa: E402
from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.engine_cache import EngineKey, write_sidecar  # noqa: E402
from usclip_sdk.triton_repo import write_triton_repo  # noqa: E402

pytestmark = pytest.mark.slow


def _triton_home() -> Path:
    spec = importlib.util.find_spec("pytriton")  # located, never imported (it pins numpy<2)
    home = Path(spec.submodule_search_locations[0]) / "tritonserver" if spec else None
    if home is None or not (home / "bin" / "tritonserver").is_file():
        msg = "tritonserver binary absent: pip install --no-deps nvidia-pytriton==0.7.0 (README: Develop and test)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return home


def _numpy1() -> Path:
    """numpy 1.x for the server's Python: this Triton's Python-backend stub reads array sizes
    with the numpy 1 layout (with numpy 2 every output fails: "output tensor shape does not
    match size of output")."""
    path = Path(sys.prefix) / "triton-numpy1"
    if not (path / "numpy").is_dir():
        msg = f"numpy 1.x for the Triton stub absent: pip install --no-deps --target {path} 'numpy>=1.24,<2'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backends(home: Path, tmp: Path) -> Path:
    """A backend folder holding the Python backend with the stub for this interpreter."""
    py = tmp / "backends" / "python"
    py.mkdir(parents=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy(home / "backends" / "python" / f, py / f)
    stub = home / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy(stub / "triton_python_backend_stub", py / "triton_python_backend_stub")
    return tmp / "backends"


def _server_env(home: Path, tmp: Path) -> dict[str, str]:
    """The server's Python: a venv first on PATH (the stub runs in isolated mode, ignores
    PYTHONPATH and takes the environment of the ``python3`` on PATH) whose .pth puts numpy 1.x
    first and adds this environment's site-packages (onnxruntime, OpenCV and the installed
    usclip_sdk, its own .pth files included), as `pip install usclip-sdk` in a server's Python
    would. The stub embeds libpython: this interpreter's build first on LD_LIBRARY_PATH, then
    the wheel's bundled libraries."""
    env_dir = tmp / "server-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    (purelib / "usclip_triton_test.pth").write_text(
        f"import sys, site; sys.path.insert(0, {str(_numpy1())!r}); list(map(site.addsitedir, {dirs!r}))\n")
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(home.parent.parent / "nvidia_pytriton.libs")]
    return dict(os.environ, PATH=os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", "")]),
                LD_LIBRARY_PATH=":".join([*libs, os.environ.get("LD_LIBRARY_PATH", "")]))


class Server:
    def __init__(self, home: Path, repo: Path, tmp: Path):
        self.port = _free_port()
        self.log = tmp / "tritonserver.log"
        cmd = [str(home / "bin" / "tritonserver"), f"--model-repository={repo}",
               f"--backend-directory={_backends(home, tmp)}", "--http-address=127.0.0.1",
               f"--http-port={self.port}", "--allow-grpc=false", "--allow-metrics=false",
               # the encoder models cannot load here (no onnxruntime/TensorRT backend): keep serving
               "--exit-on-error=false", "--strict-readiness=false", "--exit-timeout-secs=3",
               "--pinned-memory-pool-byte-size=0", "--cuda-memory-pool-byte-size=0:0"]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     env=_server_env(home, tmp), cwd=tmp)

    def wait_ready(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"tritonserver exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"tritonserver not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def _fake_engine(bundle_path: Path, cache: Path) -> None:
    """A cached 'engine' so the export writes a tensorrt_plan model (which this server cannot load)."""
    with Bundle.open(bundle_path) as b:
        key = EngineKey("image", b.file_sha256("image_encoder.onnx"), "10.3.0", "Orin", "8.7", "fp32", (1, 4, 8))
    cache.mkdir()
    (cache / key.filename()).write_bytes(b"not a real plan")
    write_sidecar(cache / key.filename(), key)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = _triton_home()
    tmp = tmp_path_factory.mktemp("triton")
    bundle_path = make_tiny_bundle(tmp / "tiny")
    _fake_engine(bundle_path, tmp / "engines")
    with Bundle.open(bundle_path) as b:
        write_triton_repo(b, tmp / "export", max_batch_size=4, kind="KIND_CPU", cache_dir=tmp / "engines")
    server = Server(home, tmp / "export" / "model_repository", tmp)
    try:
        server.wait_ready()
        yield server, bundle_path
    finally:
        server.stop()


def test_repository_loads_what_this_server_can(served):
    server, _ = served
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert set(index) == {"usclip_classify", "usclip_image", "usclip_text", "usclip_image_trt"}, server.tail()
    assert index["usclip_classify"]["state"] == "READY", server.tail()
    assert client.is_model_ready("usclip_classify")
    # The only failures: backends this server does not have (the Triton containers have both).
    for name, backend in (("usclip_image", "onnxruntime"), ("usclip_text", "onnxruntime"),
                          ("usclip_image_trt", "tensorrt")):
        assert index[name]["state"] == "UNAVAILABLE", index[name]
        assert f"unable to find backend library for backend '{backend}'" in index[name]["reason"], index[name]
    assert "Poll failed" not in server.tail()


def _infer(client, frames: np.ndarray, fields) -> tuple[list[list[str]], np.ndarray]:
    inp = httpclient.InferInput("frame", list(frames.shape), "UINT8")
    inp.set_data_from_numpy(frames)
    outs = [httpclient.InferRequestedOutput(n) for n in (*fields, "scores")]
    res = client.infer("usclip_classify", [inp], outputs=outs)
    values = [[v.decode() for v in res.as_numpy(f)[:, 0]] for f in fields]
    return [list(row) for row in zip(*values)], res.as_numpy("scores")


def test_answers_equal_classifier(served):
    server, bundle_path = served
    clf = Classifier.from_bundle(bundle_path, backend="onnxruntime", device="cpu")
    fields = clf.fields
    assert len(fields) == 9
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", concurrency=4)
    requests = [np.stack([screen(1), screen(2)]),  # one request, a batch of two RGB frames
                screen(3, 200, 260)[None, :, :, :1].copy(),  # gray, sent as H x W x 1
                screen(4)[None]]
    for batch in requests:
        values, scores = _infer(client, batch, fields)
        for frame, got, got_scores in zip(batch, values, scores):
            want = clf.classify(frame[..., 0] if frame.shape[-1] == 1 else frame)
            assert got == [want.attributes[f].value for f in fields]
            np.testing.assert_allclose(got_scores, [want.attributes[f].score for f in fields], rtol=1e-4, atol=1e-5)
    # concurrent requests of one size: the dynamic batcher may merge them; answers stay per request
    frames = [screen(10 + i) for i in range(6)]
    pending = []
    for f in frames:
        inp = httpclient.InferInput("frame", [1, *f.shape], "UINT8")
        inp.set_data_from_numpy(f[None])
        pending.append(client.async_infer("usclip_classify", [inp]))
    for f, req in zip(frames, pending):
        res = req.get_result()
        want = clf.classify(f)
        assert res.as_numpy("Diagnosis")[0, 0].decode() == want.attributes["Diagnosis"].value
        np.testing.assert_allclose(res.as_numpy("scores")[0], [want.attributes[x].score for x in fields],
                                   rtol=1e-4, atol=1e-5)


def test_bad_frame_is_a_clear_error(served):
    server, _ = served
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    inp = httpclient.InferInput("frame", [1, 8, 8, 5], "UINT8")  # five channels
    inp.set_data_from_numpy(np.zeros((1, 8, 8, 5), np.uint8))
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="InvalidInputError"):
        client.infer("usclip_classify", [inp])
    assert client.is_server_live()  # the server and model survive a bad request
