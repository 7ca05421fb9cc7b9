"""Safety: no pickle on the SDK's load path, torch.load only with weights_only=True, no DICOM
patient data in logs / JSON / exceptions, bundle paths stay inside the bundle.

Each property is checked twice where it can be: statically (an AST scan of the source, which
is itself tested on planted violations) and at run time (the real load path with pickle
disabled; a malicious optimizer.pt; planted patient fields traced through every output).
Bundle tamper / truncation / version / foreign-manifest / traversal cases are in
test_bundle_safety.py; this file adds only what it lacks.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import pickle
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from sdk_bundle import make_tiny_bundle  # noqa: E402

from usclip_sdk.bundle import Bundle  # noqa: E402
from usclip_sdk.classifier import Classifier  # noqa: E402
from usclip_sdk.errors import BundleError, InvalidInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "python" / "usclip_sdk"
TRAIN = ROOT / "training" / "usclip_train"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal"}


# ------------------------------------------------------------------------ static scan
def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<non-constant>"
    return None


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def scan_source(src: str, where: str, sdk: bool) -> list[str]:
    """Unsafe deserialisation in one module's source (``sdk``: the stricter SDK rules)."""
    bad = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                top = n.split(".")[0]
                if top in UNSAFE_MODULES or (sdk and top == "torch"):
                    bad.append(f"{where}:{node.lineno}: imports {n}")
        elif isinstance(node, ast.Call):
            f = _dotted(node.func)
            if f in ("np.load", "numpy.load") and _kw(node, "allow_pickle") is not False:
                bad.append(f"{where}:{node.lineno}: {f} without allow_pickle=False")
            elif f == "torch.load" and (sdk or _kw(node, "weights_only") is not True):
                bad.append(f"{where}:{node.lineno}: torch.load" + ("" if sdk else
                           " without weights_only=True"))
            elif f in ("pd.read_pickle", "pandas.read_pickle", "yaml.load", "yaml.unsafe_load"):
                bad.append(f"{where}:{node.lineno}: {f}")
    return bad


def _scan_tree(root: Path, sdk: bool) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        bad += scan_source(path.read_text(), str(path.relative_to(ROOT)), sdk)
    return bad


def test_scanner_finds_planted_violations():
    planted = ("import pickle\nfrom joblib import load\nimport numpy as np\nimport torch\n"
               "np.load('a')\nnp.load('a', allow_pickle=True)\nnp.load('a', allow_pickle=False)\n"
               "torch.load('x')\ntorch.load('x', weights_only=False)\n"
               "torch.load('x', weights_only=True)\nyaml.load(s)\n")
    train_hits = scan_source(planted, "t.py", sdk=False)
    assert len(train_hits) == 7, train_hits  # all but the two safe calls (and torch itself)
    assert len(scan_source(planted, "s.py", sdk=True)) == 9  # + import torch, any torch.load


def test_no_pickle_anywhere_in_the_sdk_source():
    assert _scan_tree(SDK, sdk=True) == []


def test_training_loads_only_with_weights_only():
    assert TRAIN.is_dir()
    assert _scan_tree(TRAIN, sdk=False) == []


# ------------------------------------------------------------------------ runtime: pickle off
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("safety") / "tiny")


def _forbid_pickle(monkeypatch) -> list:
    calls: list = []

    def refuse(*a, **k):
        calls.append(a[:1])
        raise AssertionError("pickle used on the SDK load path")

    class Refuse:
        def __init__(self, *a, **k):
            refuse(*a)
    for mod in (pickle, sys.modules.get("_pickle")):
        if mod is not None:
            for name in ("load", "loads"):
                monkeypatch.setattr(mod, name, refuse)
            monkeypatch.setattr(mod, "Unpickler", Refuse)
    return calls


@pytest.mark.parametrize("as_zip", [False, True])
def test_sdk_load_path_runs_with_pickle_disabled(tmp_path, monkeypatch, as_zip):
    path = make_tiny_bundle(tmp_path / "b", as_zip=as_zip)
    calls = _forbid_pickle(monkeypatch)
    clf = Classifier.from_bundle(path, backend="onnxruntime", device="cpu")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    clf.classify(frame)
    list(clf.stream([frame, frame]))
    clf.set_labels(["a cyst", "a mass"])
    clf.classify(frame)
    assert calls == []


# ------------------------------------------------------------------------ runtime: torch.load
def _malicious_pt(path: Path, marker: Path) -> None:
    class Payload:  # runs code when unpickled: what weights_only=True must refuse
        def __reduce__(self):
            return (Path.touch, (marker,))
    import torch

    torch.save({"optimizer": Payload()}, path)


def test_malicious_checkpoint_files_are_refused_not_run(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from usclip_train import checkpoint as ckpt
    from usclip_train.factory import _read_state_dict

    marker = tmp_path / "pwned"
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    _malicious_pt(tmp_path / "optimizer.pt", marker)
    ck = ckpt.Checkpoint(path=tmp_path, config={}, spec=None, state_dict=model.state_dict(),
                         aux_state={})
    with pytest.raises(pickle.UnpicklingError):
        ckpt.restore_training_state(ck, model, optimizer=opt, restore_rng=False)
    _malicious_pt(tmp_path / "init.pt", marker)
    with pytest.raises(pickle.UnpicklingError):
        _read_state_dict(tmp_path / "init.pt")
    assert not marker.exists()


# ------------------------------------------------------------------------ DICOM patient data
PHI = {"PatientName": "Qzxwv^Jorblat", "PatientID": "PIDQ7731ZX", "PatientBirthDate": "19010203",
       "OtherPatientIDs": "OPIDX55913", "AccessionNumber": "ACCQ99127",
       "ReferringPhysicianName": "Drqq^Wlkxmn", "InstitutionName": "Hospqzx Wardvy",
       "PatientAddress": "77 Zorblat Lane", "StudyID": "STQ4471", "PatientComments": "Cmtqxz"}
# What must never appear: each value and its parts (a name split at '^').
NEEDLES = sorted({p for v in PHI.values() for p in [v, *v.split("^")] if len(p) >= 5})


def _phi_dataset():
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("examples_palette.dcm", download=False)
    if path is None:
        pytest.skip("pydicom test data not installed")
    ds = pydicom.dcmread(path)
    for k, v in PHI.items():
        setattr(ds, k, v)
    return ds


def _assert_clean(text: str, what: str) -> None:
    found = [n for n in NEEDLES if n.lower() in text.lower()]
    assert not found, f"patient data {found} in {what}: ...{text[:300]}"


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record):
        self.text.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}")


def _exc_text(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def test_dicom_patient_fields_never_reach_outputs_logs_or_errors(bundle, tmp_path, capsys):
    ds = _phi_dataset()
    good = tmp_path / "scan.dcm"
    ds.save_as(good)
    data = good.read_bytes()
    truncated = tmp_path / "scan_cut.dcm"
    truncated.write_bytes(data[: len(data) - 5000])
    lying = _phi_dataset()
    lying.Rows = 20000
    cap = _Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(cap)
    root.setLevel(logging.DEBUG)
    outputs, errors = [], []
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            clf = Classifier.from_bundle(bundle, backend="onnxruntime", device="cpu")
            for src in (ds, good):
                p = clf.classify(src, return_embedding=True)
                outputs += [p.to_json(), repr(p), str(p), json.dumps(p.to_dict())]
            outputs += [q.to_json() for q in clf.stream(good)]
            outputs += [repr(f) for f in __import__("usclip_sdk.inputs").inputs.read_dicom(good)]
            for bad in (truncated, lying):
                for call in (clf.classify, lambda s: list(clf.stream(s))):
                    try:
                        call(bad)
                    except InvalidInputError as e:
                        errors.append(_exc_text(e))
        outputs += [str(w.message) for w in warned]
    finally:
        root.removeHandler(cap)
        root.setLevel(old)
    assert len(errors) == 4  # every broken file was refused (and its message is checked)
    with pytest.raises(AssertionError, match="patient data"):
        _assert_clean(str(ds), "the dataset itself")  # the needles are there to be found
    out = capsys.readouterr()
    for name, text in [("predictions", "\n".join(outputs)), ("exceptions", "\n".join(errors)),
                       ("logs", "\n".join(cap.text)), ("stdout/stderr", out.out + out.err)]:
        _assert_clean(text, name)


def test_cli_classify_json_never_prints_patient_fields(bundle, tmp_path):
    ds = _phi_dataset()
    good, cut = tmp_path / "a.dcm", tmp_path / "b.dcm"
    ds.save_as(good)
    cut.write_bytes(good.read_bytes()[:-5000])
    code = ("import logging, sys\nlogging.basicConfig(level=logging.DEBUG)\n"
            "from usclip_sdk.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    # The same interpreter and import path as the tests: the installed package in CI (the
    # source tree has no compiled extension there), the source tree in a dev checkout.
    proc = subprocess.run([sys.executable, "-c", code, "classify", str(good), str(cut),
                           "--bundle", str(bundle), "--backend", "onnxruntime", "--device", "cpu",
                           "--json"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr[-2000:]  # one good file, one refused
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0]["file"] == "a.dcm"
    assert "b.dcm" in proc.stderr
    _assert_clean(proc.stdout, "CLI JSON")
    _assert_clean(proc.stderr, "CLI stderr (DEBUG logging)")


# ------------------------------------------------------------------------ bundle paths
def _rewrite(bundle: Path, edit) -> None:
    p = bundle / "manifest.json"
    d = json.loads(p.read_text())
    edit(d)
    p.write_text(json.dumps(d))


@pytest.mark.parametrize("field", ["tokenizer", "text encoder"])
@pytest.mark.parametrize("bad", ["../outside.json", "/tmp/outside.json", "sub/../../outside.json"])
def test_every_manifest_path_field_is_confined(tmp_path, field, bad):
    """test_bundle_safety.py checks the image encoder's path; the others go through the same
    gate (a new path field must not bypass it)."""
    path = make_tiny_bundle(tmp_path / "b")
    (tmp_path / "outside.json").write_text("{}")

    def edit(d):
        old = d["text"]["tokenizer"] if field == "tokenizer" else \
            d["encoders"]["text"]["fp32"]["path"]
        d["files"][bad] = d["files"].pop(old)
        if field == "tokenizer":
            d["text"]["tokenizer"] = bad
        else:
            d["encoders"]["text"]["fp32"]["path"] = bad
    _rewrite(path, edit)
    with pytest.raises(BundleError, match="bundle path"):
        Bundle.open(path)


def test_symlinked_subfolder_pointing_outside_is_refused(tmp_path):
    path = make_tiny_bundle(tmp_path / "b")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "text_encoder.onnx").write_bytes((path / "text_encoder.onnx").read_bytes())
    os.symlink(outside, path / "sub")

    def edit(d):
        d["files"]["sub/text_encoder.onnx"] = d["files"].pop("text_encoder.onnx")
        d["encoders"]["text"]["fp32"]["path"] = "sub/text_encoder.onnx"
    _rewrite(path, edit)
    (path / "text_encoder.onnx").unlink()
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(path)
