"""Build TensorRT engines for a bundle's encoders: TensorRT 10.x and 11.x, chosen by capability.

Two ways to get a reduced precision, picked by what the installed ``tensorrt`` offers:

- "flags" (TensorRT 10, JetPack 6 on Orin; ``trt.BuilderFlag`` has ``FP16``): a weakly typed
  network from the fp32 ONNX (int8: the Q/DQ ONNX) with the FP16 (and INT8) builder flags; the
  numerically fragile layers - LayerNorm, softmax, reductions, listed by the exporter in the
  manifest's ``fp32_nodes`` and matched by layer type - are pinned to fp32 with
  OBEY_PRECISION_CONSTRAINTS.
- "strongly_typed" (TensorRT 11 removed the FP16/INT8 flags and calibrators): the network is
  created STRONGLY_TYPED from the bundle's fp16 ONNX (fp32 islands already inside it) or the
  Q/DQ int8 ONNX, so the ONNX file's types are the precision.

One optimisation profile spans the batch (MIN, OPT, MAX); text inputs are fixed at the
context length. Engines land in the engine cache (``engine_cache``: ``cache_dir=``,
``USCLIP_ENGINE_CACHE`` or the user cache folder), keyed by ONNX sha256, TensorRT version, GPU
name, compute capability and SM count, precision, profile and builder options; why a cached
engine was not used (and so is rebuilt) is logged on the ``usclip_sdk`` logger.

All TensorRT calls are in the ``_trt_*`` functions below; everything else is plain Python and
tested with a fake ``trt`` module. When ``import tensorrt`` fails, ``trtexec_command`` gives the
equivalent command line for the target (Jetson: /usr/src/tensorrt/bin/trtexec).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .bundle import Bundle
from .engine_cache import (EngineKey, GpuInfo, Profile, cache_dir_for, engine_path, gpu_info, lookup,
                           write_sidecar)
from .errors import BackendUnavailableError, BundleError, EngineError

__all__ = ["BuildPlan", "import_tensorrt", "api_flavour", "flavour_of", "flavour_for_version", "plan_build",
           "adopt_engine", "input_shapes", "trtexec_command", "build_engine", "ensure_engine", "JETSON_TRTEXEC"]

log = logging.getLogger(__name__)

JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
_FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")


def import_tensorrt():
    """The ``tensorrt`` module, or BackendUnavailableError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailableError(
            f"TensorRT not installed ({e}); on Jetson it comes with JetPack (python3-libnvinfer), "
            "on x86: pip install tensorrt (from NVIDIA's index)") from None
    if not hasattr(trt, "Builder"):
        raise BackendUnavailableError(
            f"tensorrt {getattr(trt, '__version__', '?')} has no Builder (the lean/dispatch runtime "
            "only runs engines); install the full TensorRT to build them")
    return trt


def api_flavour(trt: Any) -> str:
    """"flags" when the builder has precision flags (TensorRT <= 10), else "strongly_typed" (11+)."""
    return "flags" if hasattr(trt.BuilderFlag, "FP16") else "strongly_typed"


def flavour_for_version(version: str | int) -> str:
    """The ONNX flavour a TensorRT major version builds from: 10 and older take builder flags,
    11 and newer strongly typed graphs (the one place this rule is written)."""
    return "flags" if int(str(version).split(".")[0]) <= 10 else "strongly_typed"


def flavour_of(trt: Any) -> str:
    """``api_flavour`` where the builder exists; for a runtime-only module (no BuilderFlag) the
    major version decides, so a cache lookup names the same ONNX the builder would have used."""
    if hasattr(trt, "BuilderFlag"):
        return api_flavour(trt)
    return flavour_for_version(getattr(trt, "__version__", "11"))


@dataclass(frozen=True)
class BuildPlan:
    """What to build: which ONNX, how typed, which flags, which layers pinned to fp32."""

    tower: str
    precision: str
    flavour: str
    onnx_path: Path
    onnx_sha256: str
    flags: tuple[str, ...]  # builder flags by name ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS")
    fp32_layers: tuple[str, ...]  # ONNX node names pinned to fp32 ("flags" flavour only)
    shapes: dict  # input name -> (min, opt, max) shapes


def input_shapes(bundle: Bundle, tower: str, profile: Profile, precision: str = "fp32") -> dict:
    """Input name -> (min, opt, max) shapes for the profile (batch varies, the rest is fixed)."""
    spec = bundle.encoder(tower, precision)
    if tower == "image":
        h, w = bundle.preprocess.image_size
        dims = lambda b: (b, 3, h, w)  # noqa: E731
    else:
        dims = lambda b: (b, bundle.text.context_length)  # noqa: E731
    return {t.name: (dims(profile.min), dims(profile.opt), dims(profile.max)) for t in spec.inputs}


def plan_build(bundle: Bundle, tower: str, precision: str, profile: Profile, flavour: str) -> BuildPlan:
    """Choose the ONNX file, flags and fp32 pins for ``precision`` under ``flavour``."""
    if precision == "int8_cpu":
        raise ValueError("precision 'int8_cpu' is the onnxruntime CPU encoder (uint8 activations), not a "
                         "TensorRT input; build the engine from 'int8' (symmetric Q/DQ), 'fp16' or 'fp32'")
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision: expected 'fp32', 'fp16' or 'int8', found {precision!r}")
    if flavour not in ("flags", "strongly_typed"):
        raise ValueError(f"flavour: expected 'flags' or 'strongly_typed', found {flavour!r}")
    have = bundle.precisions(tower)
    # Which ONNX: strongly typed networks take their precision from the file; with flags the
    # fp32 file is the source for fp16 (TensorRT picks fp16 kernels), the Q/DQ file for int8.
    source = precision if (flavour == "strongly_typed" or precision == "int8") else "fp32"
    if source not in have:
        hint = {"fp16": "re-export it with usclip export CHECKPOINT --out BUNDLE --fp16",
                "int8": "re-export it with usclip export CHECKPOINT --out BUNDLE --int8-image" if tower == "image"
                else "the text encoder has no int8 variant; build it in fp16"}.get(source, "")
        why = ("TensorRT 11 takes the precision from the ONNX file" if flavour == "strongly_typed"
               else "TensorRT 10 builds int8 from the quantised Q/DQ file")
        raise BundleError(f"{tower} encoder: an {precision} engine needs the bundle's {source} "
                          f"{tower} encoder ({why}), and this bundle ships only {', '.join(have)}; {hint}")
    spec = bundle.encoder(tower, source)
    flags: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    if flavour == "flags" and precision != "fp32":
        flags = ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS") if precision == "int8" else (
            "FP16", "OBEY_PRECISION_CONSTRAINTS")
        pins = spec.fp32_nodes
    return BuildPlan(tower, precision, flavour, bundle.file(spec.path), bundle.file_sha256(spec.path), flags,
                     pins, input_shapes(bundle, tower, profile, source))


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def trtexec_command(plan: BuildPlan, engine: str | Path, *, target: str = "jetson", workspace_mb: int | None = None,
                    timing_cache: str | Path | None = None) -> list[str]:
    """The trtexec command line equivalent to building ``plan`` (argv list)."""
    if target not in ("jetson", "x86"):
        raise ValueError(f"target: expected 'jetson' or 'x86', found {target!r}")
    exe = JETSON_TRTEXEC if target == "jetson" else "trtexec"
    cmd = [exe, f"--onnx={plan.onnx_path}", f"--saveEngine={engine}"]
    for i, key in enumerate(("--minShapes", "--optShapes", "--maxShapes")):
        cmd.append(f"{key}=" + ",".join(f"{n}:{_dims(s[i])}" for n, s in plan.shapes.items()))
    if plan.flavour == "strongly_typed":
        cmd.append("--stronglyTyped")
    else:
        cmd += [f"--{f.lower()}" for f in plan.flags if f in ("FP16", "INT8")]
        if plan.fp32_layers:
            cmd += ["--precisionConstraints=obey",
                    "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in plan.fp32_layers),
                    "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in plan.fp32_layers)]
    if workspace_mb:
        cmd.append(f"--memPoolSize=workspace:{int(workspace_mb)}M")
    if timing_cache:
        cmd.append(f"--timingCacheFile={timing_cache}")
    return cmd


# ---- the thin TensorRT layer ------------------------------------------------------------------
def _trt_network(trt: Any, builder: Any, flavour: str):
    flags = 0
    if flavour == "strongly_typed":
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def _trt_parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"TensorRT could not parse {onnx_path.name}: " + "; ".join(errors))


def _trt_pin_fp32(trt: Any, network: Any, names: Sequence[str]) -> int:
    """Pin the named (or fragile-typed) layers and their outputs to fp32; returns how many."""
    wanted = set(names)
    types = {getattr(trt.LayerType, t) for t in _FP32_LAYER_TYPES if hasattr(trt.LayerType, t)}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in wanted or layer.type in types:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def _trt_config(trt: Any, builder: Any, network: Any, plan: BuildPlan, workspace_mb: int | None,
                cache_blob: bytes | None):
    config = builder.create_builder_config()
    if workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    timing = config.create_timing_cache(cache_blob or b"")
    config.set_timing_cache(timing, False)
    return config


def _trt_build(trt: Any, plan: BuildPlan, workspace_mb: int | None, timing_cache: Path | None) -> tuple[bytes, int]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _trt_network(trt, builder, plan.flavour)
    _trt_parse(trt, network, logger, plan.onnx_path)
    pinned = _trt_pin_fp32(trt, network, plan.fp32_layers) if plan.fp32_layers else 0
    blob = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else None
    config = _trt_config(trt, builder, network, plan, workspace_mb, blob)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build the {plan.tower} {plan.precision} engine "
                          f"from {plan.onnx_path.name} (see the TensorRT log above)")
    if timing_cache:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized)), pinned


# ---- build and cache ---------------------------------------------------------------------------
def builder_options(plan: BuildPlan, workspace_mb: int | None = None) -> str:
    """The builder options an engine depends on, as one canonical string for its key: typing
    flavour, flags, the fp32-pinned layers (count + digest) and the workspace limit."""
    pins = hashlib.sha256("\n".join(plan.fp32_layers).encode()).hexdigest()[:12] if plan.fp32_layers else ""
    return json.dumps({"flavour": plan.flavour, "flags": sorted(plan.flags), "fp32_layers": len(plan.fp32_layers),
                       "fp32_layers_sha": pins, "workspace_mb": workspace_mb}, sort_keys=True, separators=(",", ":"))


def _key(plan: BuildPlan, trt_version: str, gpu: GpuInfo, profile: Profile,
         workspace_mb: int | None = None) -> EngineKey:
    return EngineKey(plan.tower, plan.onnx_sha256, trt_version, gpu.name, gpu.compute_capability,
                     plan.precision, (profile.min, profile.opt, profile.max), gpu.sm_count,
                     builder_options(plan, workspace_mb))


def build_engine(bundle: Bundle, tower: str, precision: str, profile: Profile, *, trt: Any = None,
                 gpu: GpuInfo | None = None, cache_dir: str | Path | None = None, workspace_mb: int | None = None,
                 timing_cache: str | Path | None = None) -> Path:
    """Build (always) the engine for ``tower``/``precision``/``profile`` into the cache; returns its path."""
    trt = trt or import_tensorrt()
    gpu = gpu or gpu_info()
    plan = plan_build(bundle, tower, precision, profile, api_flavour(trt))
    key = _key(plan, str(trt.__version__), gpu, profile, workspace_mb)
    out = engine_path(cache_dir or cache_dir_for(bundle.source), key)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob, pinned = _trt_build(trt, plan, workspace_mb, Path(timing_cache) if timing_cache else None)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_bytes(blob)
    tmp.replace(out)
    write_sidecar(out, key, {"flavour": plan.flavour, "flags": list(plan.flags), "fp32_layers_pinned": pinned,
                             "onnx": plan.onnx_path.name, "workspace_mb": workspace_mb, "bundle_id": bundle.id,
                             "shapes": {k: [list(s) for s in v] for k, v in plan.shapes.items()}})
    return out


def ensure_engine(bundle: Bundle, tower: str, precision: str, profile: Profile, *, trt: Any = None,
                  gpu: GpuInfo | None = None, cache_dir: str | Path | None = None, rebuild: bool = True,
                  **build_kw: Any) -> Path:
    """A valid cached engine, rebuilt when stale or missing (``rebuild``), else EngineError."""
    trt_mod = trt
    if trt_mod is None:
        import tensorrt as trt_mod  # the runtime alone is enough to look up a cached engine
    gpu = gpu or gpu_info()
    flavour = flavour_of(trt_mod)
    plan = plan_build(bundle, tower, precision, profile, flavour)
    key = _key(plan, str(trt_mod.__version__), gpu, profile, build_kw.get("workspace_mb"))
    cache = Path(cache_dir or cache_dir_for(bundle.source))
    path, reasons = lookup(cache, key)
    if path is not None:
        log.debug("%s %s engine from the cache: %s", tower, precision, path)
        return path
    # a missing engine is expected on first use; a stale one (TensorRT upgrade, other GPU,
    # re-exported bundle, other builder options, tampered file) is worth a warning
    stale = not (len(reasons) == 1 and reasons[0].startswith("no cached engine"))
    log.log(logging.WARNING if stale else logging.INFO, "%s %s engine not usable from %s (%s): %s",
            tower, precision, cache, "; ".join(reasons), "rebuilding" if rebuild else "rebuild disabled")
    if not rebuild or not hasattr(trt_mod, "Builder"):
        why = "rebuild=False" if not rebuild else f"tensorrt {trt_mod.__version__} here has no builder"
        raise EngineError(f"{tower} {precision} engine for {bundle.source}: cannot use the cache ("
                          + "; ".join(reasons) + f") and cannot rebuild ({why}). Build it with: "
                          + shlex.join(trtexec_command(plan, engine_path(cache, key))))
    return build_engine(bundle, tower, precision, profile, trt=trt_mod, gpu=gpu, cache_dir=cache, **build_kw)


def adopt_engine(bundle: Bundle, engine: str | Path, tower: str, precision: str, profile: Profile, *,
                 tensorrt_version: str, gpu: GpuInfo, flavour: str, cache_dir: str | Path | None = None) -> Path:
    """Register an engine built elsewhere (e.g. by the printed trtexec line) in the cache:
    copy it under its key's name and write the sidecar. The caller vouches for version and GPU."""
    plan = plan_build(bundle, tower, precision, profile, flavour)
    key = _key(plan, tensorrt_version, gpu, profile)
    out = engine_path(cache_dir or cache_dir_for(bundle.source), key)
    out.parent.mkdir(parents=True, exist_ok=True)
    src = Path(engine)
    if not src.is_file():
        raise FileNotFoundError(f"--adopt: engine file {src} does not exist")
    if src.resolve() != out.resolve():
        tmp = out.with_name(out.name + ".partial")
        tmp.write_bytes(src.read_bytes())
        tmp.replace(out)
    write_sidecar(out, key, {"flavour": flavour, "adopted_from": str(src), "bundle_id": bundle.id})
    return out
