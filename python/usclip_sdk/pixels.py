"""The one pixel path: frame + imaging region + preprocess spec -> model input.

Training (``usclip_train.data``), evaluation (``usclip_train.evaluate.images``), INT8
calibration and the runtime (``Classifier``) all build the image tower's input with
``model_input``, so a model is served exactly the pixels it was trained on. The spec is
``PreprocessSpec``: the one description of that input, stored in model configs, checkpoints
and bundle manifests (its ``to_dict`` is the manifest's ``preprocess`` object).

The contract (docs/architecture.md): crop to the region's bounding box, replace pixels outside
its mask by ``fill_color``, stretch (or letterbox) to ``image_size`` with pixel-centre bilinear
(antialiased when downscaling, PIL's filter), scale to 0..1, normalise with mean/std, NCHW, in
``channel_order``. Every field is either honoured or refused by name when its value is one the
kernel does not implement: a bundle asking for NHWC or nearest-neighbour resizing must fail
loudly, not be fed NCHW bilinear pixels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from .ops.preprocess import preprocess

__all__ = ["PreprocessSpec", "parse_preprocess", "model_input", "RESIZE_ALIASES"]

# open_clip's names for the same two resize modes (its PreprocessCfg.resize_mode).
RESIZE_ALIASES = {"stretch": "stretch", "squash": "stretch", "letterbox": "letterbox",
                  "longest": "letterbox"}
# What the preprocess kernel implements, per field (anything else is refused by name).
_IMPLEMENTED = {"interpolation": ("bilinear",), "antialias": (True,),
                "region": ("imaging_region", "full"), "channel_order": ("RGB", "BGR"),
                "layout": ("NCHW",), "dtype": ("float32", "float16")}
_REQUIRED = ("image_size", "mean", "std")
# Checkpoints and model configs written before the spec was unified call image_size "size".
_LEGACY_KEYS = {"size": "image_size"}


@dataclass(frozen=True)
class PreprocessSpec:
    """How a frame becomes the image tower's input (see the module docstring)."""

    image_size: tuple[int, int] = (224, 224)  # H, W of the encoder input
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)  # 0..1 scale, per channel
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resize_mode: str = "stretch"  # "stretch" (what training uses) | "letterbox"
    interpolation: str = "bilinear"  # pixel-centre aligned
    antialias: bool = True  # when downscaling (PIL-like); the kernel always does
    region: str = "imaging_region"  # "imaging_region" (crop to it) | "full" (whole frame)
    fill_color: int = 0  # 0..255, outside the region mask and in letterbox padding
    channel_order: str = "RGB"  # order of the tower's input channels (mean/std are in it too)
    layout: str = "NCHW"
    dtype: str = "float32"  # input dtype of the fp32 image encoder

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"], d["mean"], d["std"] = list(self.image_size), list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "preprocess") -> "PreprocessSpec":
        return parse_preprocess(d, where)


def _fail(error: type[Exception], where: str, msg: str) -> Exception:
    return error(f"{where}: {msg}")


def parse_preprocess(d: Any, where: str = "preprocess", error: type[Exception] = ValueError,
                     legacy: bool = True) -> PreprocessSpec:
    """A strictly checked ``PreprocessSpec`` from a mapping; ``error`` is raised naming the key.

    Unknown keys, wrong types and values the runtime does not implement are refused.
    ``legacy`` accepts the older key ``size`` for ``image_size`` (checkpoints, model JSON).
    """
    if not isinstance(d, Mapping):
        raise _fail(error, where, f"expected an object, found {type(d).__name__}")
    d = {(_LEGACY_KEYS.get(k, k) if legacy else k): v for k, v in d.items()}
    fields = PreprocessSpec.__dataclass_fields__
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise _fail(error, where, f"unknown keys {unknown}; expected some of {sorted(fields)}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise _fail(error, where, f"missing keys {missing}")
    kw: dict[str, Any] = {}
    for k, n in (("image_size", 2), ("mean", 3), ("std", 3)):
        seq = d[k]
        if not isinstance(seq, (list, tuple)) or len(seq) != n:
            raise _fail(error, f"{where}.{k}", f"expected {n} numbers, found {seq!r}")
        kind = int if k == "image_size" else (int, float)
        if any(isinstance(x, bool) or not isinstance(x, kind) for x in seq):
            raise _fail(error, f"{where}.{k}", f"expected {'integers' if kind is int else 'numbers'}, "
                        f"found {seq!r}")
        kw[k] = tuple(int(x) for x in seq) if kind is int else tuple(float(x) for x in seq)
    if min(kw["image_size"]) < 1:
        raise _fail(error, f"{where}.image_size", f"expected positive sizes, found {kw['image_size']}")
    if any(s <= 0 for s in kw["std"]):
        raise _fail(error, f"{where}.std", f"expected positive values, found {kw['std']}")
    for k in ("resize_mode", "interpolation", "region", "channel_order", "layout", "dtype"):
        if k in d:
            if not isinstance(d[k], str):
                raise _fail(error, f"{where}.{k}", f"expected a string, found {d[k]!r}")
            kw[k] = d[k]
    if "resize_mode" in kw:
        if kw["resize_mode"] not in RESIZE_ALIASES:
            raise _fail(error, f"{where}.resize_mode", f"{kw['resize_mode']!r} is not implemented; "
                        f"expected one of {sorted(RESIZE_ALIASES)}")
        kw["resize_mode"] = RESIZE_ALIASES[kw["resize_mode"]]
    if "antialias" in d:
        if not isinstance(d["antialias"], bool):
            raise _fail(error, f"{where}.antialias", f"expected true or false, found {d['antialias']!r}")
        kw["antialias"] = d["antialias"]
    if "fill_color" in d:
        f = d["fill_color"]
        if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f <= 255:
            raise _fail(error, f"{where}.fill_color", f"expected an integer 0..255, found {f!r}")
        kw["fill_color"] = f
    for k, allowed in _IMPLEMENTED.items():
        if k in kw and kw[k] not in allowed:
            raise _fail(error, f"{where}.{k}", f"{kw[k]!r} is not implemented by the preprocess "
                        f"kernel; supported: {list(allowed)}")
    return PreprocessSpec(**kw)


def model_input(pixels: np.ndarray, bbox: tuple[int, int, int, int] | None, mask: np.ndarray | None,
                spec: PreprocessSpec, dtype: str | None = None, out: Any = None, device: str = "cpu",
                stream: Any = None) -> Any:
    """The image tower's input for one frame: 1 x 3 x H x W (``spec``'s contract).

    pixels: uint8 H x W (gray) or H x W x 3 RGB, the whole frame.
    bbox, mask: the imaging region, (x0, y0, x1, y1) half-open and a full-frame H x W uint8 mask
        (0 = outside); None for either means the whole frame / no mask. ``spec.region == "full"``
        ignores both.
    dtype: the output dtype (default ``spec.dtype``; a backend may take float16).
    out, device, stream: as ``ops.preprocess`` (write into a caller's buffer, e.g. an engine's
        input binding on the GPU).
    """
    if spec.region == "full":
        bbox, mask = None, None
    # The kernel's ``color`` is the source's channel order: naming an RGB frame "bgr" makes
    # it emit B, G, R, which is exactly a BGR tower's input (mean/std are in tower order).
    color = "bgr" if spec.channel_order == "BGR" else "rgb"
    return preprocess(pixels, size=tuple(spec.image_size), roi=bbox, mask=mask, mean=spec.mean,
                      std=spec.std, color=color, resize=RESIZE_ALIASES[spec.resize_mode],
                      dtype=dtype or spec.dtype, out=out, device=device, stream=stream,
                      fill=spec.fill_color / 255.0)
