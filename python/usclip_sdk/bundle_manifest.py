"""The bundle's manifest.json schema: typed, frozen, strict.

A manifest is parsed into frozen dataclasses; an unknown key, a missing key or a value of the
wrong type is a ``BundleError`` naming the key, so a bundle written by a newer exporter with
the same format version cannot be half-understood. ``format_version`` is checked first: a
version this SDK does not read is a ``BundleVersionError``.

Schema (format_version 1), every path relative to the bundle root::

    {"format_version": 1,
     "model": {"name", "embed_dim", "logit_scale", "logit_bias" (number|null), "source" {}},
     "preprocess": {"image_size" [H, W], "mean" [3], "std" [3], "resize_mode", "interpolation",
                    "antialias", "region", "fill_color", "channel_order", "layout", "dtype"},
     "text": {"tokenizer", "context_length", "pad_id", "clean", "padding",
              "inputs" [{"name", "dtype"}], "output"},
     "taxonomy": {"version", "class_names" [[field, value]], "group_sizes" [int],
                  "prompt_templates" {field: [template]}},
     "encoders": {"image"|"text": {"fp32"|"fp16"|"int8"|"int8_cpu": {"path", "inputs" [{"name", "dtype"}],
                  "output", "fp32_nodes" [str], "agreement" (optional) {figure: number}}}},
       (int8: Q/DQ with symmetric int8 activations, what TensorRT consumes; int8_cpu: Q/DQ with
       uint8 activations and 7-bit per-channel weights, the form onnxruntime runs fast on x86
       CPUs with AVX2, VNNI or AMX - symmetric int8 activations run no faster than fp32 there)
     "class_embeddings": path,
     "files": {path: {"sha256", "size"}},
     "calibration" (optional; absent in older bundles): {"temperatures" {field: T},
         "confidence_thresholds" {field: p}, "offsets" {field: [b per value]},
         "ood": {"method", "reference" path, "threshold",
         "accept", "shrinkage"} | null, "fitted_on" {}},
     "label_support" (optional): {field: [values the model was trained on]}}
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .errors import BundleError, BundleVersionError
from .pixels import PreprocessSpec, parse_preprocess

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "PRECISIONS",
    "TOWERS",
    "SAFE_SUFFIXES",
    "TensorSpec",
    "EncoderSpec",
    "ModelInfo",
    "PreprocessSpec",
    "TextSpec",
    "TaxonomyInfo",
    "FileEntry",
    "OODSpec",
    "CalibrationSpec",
    "Manifest",
    "parse_manifest",
    "manifest_to_dict",
]

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
PRECISIONS = ("fp32", "fp16", "int8", "int8_cpu")
TOWERS = ("image", "text")
# Only formats that cannot execute code on load: ONNX protobuf, JSON, .npy (allow_pickle=False).
SAFE_SUFFIXES = (".onnx", ".json", ".npy")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name the runtime feeds: "float32", "float16", "int64"


@dataclass(frozen=True)
class EncoderSpec:
    path: str
    inputs: tuple[TensorSpec, ...]
    output: str
    # ONNX node names kept in fp32 (LayerNormalization, Softmax, the final L2 norm); a
    # TensorRT 10 build pins these layers to fp32 when building in fp16.
    fp32_nodes: tuple[str, ...] = ()
    # A reduced-precision encoder's agreement with fp32, measured at export on held-out
    # synthetic cases ("frames", "cosine_min", "top1_agreement", "avgacc_delta_points"): the
    # onnxruntime backend picks int8_cpu on "auto" only when it meets the accuracy guard.
    agreement: Mapping[str, float] | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    embed_dim: int
    logit_scale: float  # already exp()'d: logits = logit_scale * image @ text.T + logit_bias
    logit_bias: float | None = None
    source: Mapping[str, Any] | None = None  # checkpoint path/sha, exporter versions


@dataclass(frozen=True)
class TextSpec:
    tokenizer: str  # path of a HF tokenizers tokenizer.json
    context_length: int
    pad_id: int
    # text cleaning before tokenizing: "none" (usclip's TextTokenizer) | open_clip's
    # "whitespace" | "lower" | "canonicalize"
    clean: str
    padding: str  # "max_length": pad to context_length; the mask input makes "longest" equivalent
    inputs: tuple[TensorSpec, ...]
    output: str


@dataclass(frozen=True)
class TaxonomyInfo:
    version: str
    class_names: tuple[tuple[str, str], ...]
    group_sizes: tuple[int, ...]
    prompt_templates: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class OODSpec:
    """The out-of-distribution score's reference statistics (usclip_sdk.calibration)."""

    method: str  # "mahalanobis": shrunk-covariance distance of the image embedding
    reference: str  # .npy, (D + 1) x D float32: row 0 the mean, then the precision matrix
    threshold: float  # scores above it are out of distribution
    accept: float  # fraction of in-distribution validation frames the threshold accepts
    shrinkage: float


@dataclass(frozen=True)
class CalibrationSpec:
    """Fitted on a validation split (``usclip calibrate`` / ``usclip export --calib-data``)."""

    temperatures: Mapping[str, float]  # per taxonomy dimension; probabilities = softmax(logits / T)
    confidence_thresholds: Mapping[str, float]  # calibrated top-1 probability below which a dimension is unsure
    offsets: Mapping[str, tuple[float, ...]] | None = None  # per-class logit offsets: softmax(logits / T + b)
    ood: OODSpec | None = None
    fitted_on: Mapping[str, Any] | None = None  # data set, split, frame count, figures


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: ModelInfo
    preprocess: PreprocessSpec
    text: TextSpec
    taxonomy: TaxonomyInfo
    encoders: Mapping[str, Mapping[str, EncoderSpec]]
    class_embeddings: str
    files: Mapping[str, FileEntry]
    calibration: CalibrationSpec | None = None
    # The taxonomy values the model was trained on, per dimension (absent: unknown, all scored).
    label_support: Mapping[str, tuple[str, ...]] | None = None

    def referenced_paths(self) -> tuple[str, ...]:
        """Every path the manifest points at (each must also be in ``files``)."""
        paths = [self.text.tokenizer, self.class_embeddings]
        for by_precision in self.encoders.values():
            paths += [e.path for e in by_precision.values()]
        if self.calibration is not None and self.calibration.ood is not None:
            paths.append(self.calibration.ood.reference)
        return tuple(paths)


def _obj(d: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, Mapping):
        raise BundleError(f"manifest {where}: expected an object, found {type(d).__name__}")
    unknown = sorted(set(d) - set(required) - set(optional))
    if unknown:
        raise BundleError(f"manifest {where}: unknown keys {unknown}; expected {list(required + optional)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise BundleError(f"manifest {where}: missing keys {missing}")
    return dict(d)


def _typed(v: Any, kind: type | tuple, where: str) -> Any:
    # bool is an int in Python; a manifest saying "embed_dim": true is still wrong.
    if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
        raise BundleError(f"manifest {where}: expected {kind}, found {type(v).__name__} {v!r}")
    return v


def _str_list(v: Any, where: str) -> tuple[str, ...]:
    return tuple(_typed(x, str, f"{where}[{i}]") for i, x in enumerate(_typed(v, list, where)))


def _tensors(v: Any, where: str) -> tuple[TensorSpec, ...]:
    out = []
    for i, t in enumerate(_typed(v, list, where)):
        t = _obj(t, f"{where}[{i}]", ("name", "dtype"))
        out.append(TensorSpec(_typed(t["name"], str, f"{where}[{i}].name"),
                              _typed(t["dtype"], str, f"{where}[{i}].dtype")))
    return tuple(out)


def _encoders(v: Any) -> dict[str, dict[str, EncoderSpec]]:
    towers = _obj(v, "encoders", ("image",), ("text",))
    out: dict[str, dict[str, EncoderSpec]] = {}
    for tower, by_prec in towers.items():
        # The image tower always ships fp32 (the reference every variant is measured against);
        # the text tower may ship only int8, to keep a bundle small.
        by_prec = _obj(by_prec, f"encoders.{tower}", ("fp32",) if tower == "image" else (), PRECISIONS
                       if tower == "text" else PRECISIONS[1:])
        if not by_prec:
            raise BundleError(f"manifest encoders.{tower}: expected at least one of {list(PRECISIONS)}")
        out[tower] = {}
        for prec, e in by_prec.items():
            w = f"encoders.{tower}.{prec}"
            e = _obj(e, w, ("path", "inputs", "output"), ("fp32_nodes", "agreement"))
            out[tower][prec] = EncoderSpec(
                _typed(e["path"], str, f"{w}.path"), _tensors(e["inputs"], f"{w}.inputs"),
                _typed(e["output"], str, f"{w}.output"), _str_list(e.get("fp32_nodes", []), f"{w}.fp32_nodes"),
                _agreement(e["agreement"], f"{w}.agreement") if "agreement" in e else None)
    return out


def _agreement(v: Any, where: str) -> dict[str, float]:
    if not isinstance(v, Mapping):
        raise BundleError(f"manifest {where}: expected an object, found {type(v).__name__}")
    return {_typed(k, str, where): float(_typed(x, (int, float), f"{where}.{k}")) for k, x in v.items()}


def _model(v: Any) -> ModelInfo:
    m = _obj(v, "model", ("name", "embed_dim", "logit_scale"), ("logit_bias", "source"))
    bias = m.get("logit_bias")
    return ModelInfo(_typed(m["name"], str, "model.name"), _typed(m["embed_dim"], int, "model.embed_dim"),
                     float(_typed(m["logit_scale"], (int, float), "model.logit_scale")),
                     None if bias is None else float(_typed(bias, (int, float), "model.logit_bias")),
                     _typed(m.get("source", {}), Mapping, "model.source"))


def _preprocess(v: Any) -> PreprocessSpec:
    # One spec for every room (usclip_sdk.pixels): values the runtime does not implement
    # (NHWC, nearest, ...) are refused here, by name, before anything is fed to a model.
    try:
        return parse_preprocess(v, "preprocess", legacy=False)
    except ValueError as e:
        raise BundleError(f"manifest {e}") from None


def _text(v: Any) -> TextSpec:
    t = _obj(v, "text", ("tokenizer", "context_length", "pad_id", "clean", "padding", "inputs", "output"))
    return TextSpec(_typed(t["tokenizer"], str, "text.tokenizer"),
                    _typed(t["context_length"], int, "text.context_length"),
                    _typed(t["pad_id"], int, "text.pad_id"), _typed(t["clean"], str, "text.clean"),
                    _typed(t["padding"], str, "text.padding"), _tensors(t["inputs"], "text.inputs"),
                    _typed(t["output"], str, "text.output"))


def _taxonomy(v: Any) -> TaxonomyInfo:
    t = _obj(v, "taxonomy", ("version", "class_names", "group_sizes", "prompt_templates"))
    names = []
    for i, pair in enumerate(_typed(t["class_names"], list, "taxonomy.class_names")):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise BundleError(f"manifest taxonomy.class_names[{i}]: expected [field, value], found {pair!r}")
        names.append((pair[0], pair[1]))
    sizes = tuple(_typed(x, int, "taxonomy.group_sizes[]")
                  for x in _typed(t["group_sizes"], list, "taxonomy.group_sizes"))
    if sum(sizes) != len(names):
        raise BundleError(f"manifest taxonomy: group_sizes sum to {sum(sizes)}, class_names has {len(names)}")
    templates = {k: _str_list(x, f"taxonomy.prompt_templates.{k}")
                 for k, x in _typed(t["prompt_templates"], Mapping, "taxonomy.prompt_templates").items()}
    return TaxonomyInfo(_typed(t["version"], str, "taxonomy.version"), tuple(names), sizes, templates)


def _files(v: Any) -> dict[str, FileEntry]:
    out = {}
    for path, e in _typed(v, Mapping, "files").items():
        e = _obj(e, f"files[{path!r}]", ("sha256", "size"))
        sha = _typed(e["sha256"], str, f"files[{path!r}].sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise BundleError(f"manifest files[{path!r}].sha256: expected 64 lowercase hex digits, found {sha!r}")
        out[path] = FileEntry(sha, _typed(e["size"], int, f"files[{path!r}].size"))
    return out


def _per_field(v: Any, where: str, fields: tuple[str, ...], lo: float, hi: float) -> dict[str, float]:
    out = {}
    for k, x in _typed(v, Mapping, where).items():
        if k not in fields:
            raise BundleError(f"manifest {where}: {k!r} is not a taxonomy dimension of this bundle; "
                              f"expected {list(fields)}")
        x = float(_typed(x, (int, float), f"{where}.{k}"))
        if not lo < x <= hi:  # also refuses nan
            raise BundleError(f"manifest {where}.{k}: expected a number in ({lo}, {hi}], found {x}")
        out[k] = x
    return out


def _calibration(v: Any, sizes: Mapping[str, int]) -> CalibrationSpec:
    fields = tuple(sizes)
    c = _obj(v, "calibration", ("temperatures", "confidence_thresholds"), ("offsets", "ood", "fitted_on"))
    offsets = {}
    for k, xs in _typed(c.get("offsets", {}), Mapping, "calibration.offsets").items():
        if k not in sizes:
            raise BundleError(f"manifest calibration.offsets: {k!r} is not a taxonomy dimension of this bundle")
        xs = tuple(float(_typed(x, (int, float), f"calibration.offsets.{k}[]"))
                   for x in _typed(xs, list, f"calibration.offsets.{k}"))
        if len(xs) != sizes[k] or not all(abs(x) <= 50 for x in xs):  # also refuses nan
            raise BundleError(f"manifest calibration.offsets.{k}: expected {sizes[k]} numbers in [-50, 50]")
        offsets[k] = xs
    ood = c.get("ood")
    if ood is not None:
        o = _obj(ood, "calibration.ood", ("method", "reference", "threshold", "accept", "shrinkage"))
        if o["method"] != "mahalanobis":
            raise BundleError(f"manifest calibration.ood.method: expected 'mahalanobis', found {o['method']!r}")
        nums = {k: float(_typed(o[k], (int, float), f"calibration.ood.{k}"))
                for k in ("threshold", "accept", "shrinkage")}
        if not (nums["threshold"] > 0 and 0 < nums["accept"] <= 1 and 0 <= nums["shrinkage"] <= 1):
            raise BundleError(f"manifest calibration.ood: expected threshold > 0, 0 < accept <= 1, "
                              f"0 <= shrinkage <= 1, found {nums}")
        ood = OODSpec("mahalanobis", _typed(o["reference"], str, "calibration.ood.reference"), **nums)
    return CalibrationSpec(_per_field(c["temperatures"], "calibration.temperatures", fields, 0.0, 1e3),
                           _per_field(c["confidence_thresholds"], "calibration.confidence_thresholds",
                                      fields, 0.0, 1.0),
                           offsets, ood, dict(_typed(c.get("fitted_on", {}), Mapping, "calibration.fitted_on")))


def _label_support(v: Any, taxonomy: TaxonomyInfo) -> dict[str, tuple[str, ...]]:
    """{field: [values]}: every field a dimension of the bundle, every value one of its classes,
    at least one value per field listed."""
    known: dict[str, list[str]] = {}
    for f, val in taxonomy.class_names:
        known.setdefault(f, []).append(val)
    out = {}
    for f, vals in _typed(v, Mapping, "label_support").items():
        if f not in known:
            raise BundleError(f"manifest label_support: {f!r} is not a taxonomy dimension of this bundle")
        vals = _str_list(vals, f"label_support.{f}")
        bad = [x for x in vals if x not in known[f]]
        if bad or not vals:
            raise BundleError(f"manifest label_support.{f}: expected some of {known[f]}, found {list(vals)}")
        out[f] = tuple(vals)
    return out


def parse_manifest(d: Any) -> Manifest:
    """A manifest dict (from JSON) as a ``Manifest``; version first, then strict schema."""
    if not isinstance(d, Mapping):
        raise BundleError(f"manifest.json: expected a JSON object, found {type(d).__name__}")
    version = d.get("format_version")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise BundleVersionError(
            f"manifest.json: format_version {version!r} is not readable by this SDK "
            f"(reads {list(SUPPORTED_VERSIONS)}); upgrade usclip-sdk or re-export the bundle")
    d = _obj(d, "(top level)", ("format_version", "model", "preprocess", "text", "taxonomy", "encoders",
                                "class_embeddings", "files"), ("calibration", "label_support"))
    taxonomy = _taxonomy(d["taxonomy"])
    sizes = dict(zip(dict.fromkeys(f for f, _ in taxonomy.class_names), taxonomy.group_sizes))
    m = Manifest(version, _model(d["model"]), _preprocess(d["preprocess"]), _text(d["text"]),
                 taxonomy, _encoders(d["encoders"]),
                 _typed(d["class_embeddings"], str, "class_embeddings"), _files(d["files"]),
                 None if d.get("calibration") is None else _calibration(d["calibration"], sizes),
                 None if d.get("label_support") is None else _label_support(d["label_support"], taxonomy))
    for p in m.referenced_paths():
        if p not in m.files:
            raise BundleError(f"manifest: {p!r} is referenced but has no entry in 'files' (no checksum)")
    fp32_in = m.encoders["image"]["fp32"].inputs
    if fp32_in and fp32_in[0].dtype != m.preprocess.dtype:
        raise BundleError(f"manifest preprocess.dtype: {m.preprocess.dtype!r} disagrees with the fp32 "
                          f"image encoder's input {fp32_in[0].name!r} ({fp32_in[0].dtype})")
    return m


def manifest_to_dict(m: Manifest) -> dict:
    """The JSON form of ``m`` (inverse of ``parse_manifest``)."""
    d = asdict(m)
    d["taxonomy"]["class_names"] = [list(p) for p in m.taxonomy.class_names]
    d["taxonomy"]["prompt_templates"] = {k: list(v) for k, v in m.taxonomy.prompt_templates.items()}
    d["model"]["source"] = dict(m.model.source or {})
    if m.calibration is None:
        del d["calibration"]  # older readers reject unknown keys; an uncalibrated manifest stays as it was
    if m.label_support is None:
        del d["label_support"]
    for by_prec in d["encoders"].values():
        for e in by_prec.values():
            if e["agreement"] is None:
                del e["agreement"]  # encoders without a measured agreement are written as before
            else:
                e["agreement"] = dict(e["agreement"])

    def lists(x):  # tuples -> lists so json round-trips compare equal
        if isinstance(x, dict):
            return {k: lists(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [lists(v) for v in x]
        return x
    return lists(d)
