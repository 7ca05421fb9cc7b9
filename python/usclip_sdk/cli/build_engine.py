"""``usclip build-engine BUNDLE --precision fp32|fp16|int8 --batch MIN,OPT,MAX``.

Builds TensorRT engines for the bundle's encoders into the engine cache (--cache-dir, else
$USCLIP_ENGINE_CACHE, else the user cache folder; TensorRT 10 or 11, chosen by capability).
Building needs TensorRT and the bundle, never torch. Where TensorRT is not installed it
prints the equivalent trtexec command line for the target and exits 3; --adopt ENGINE then
registers the engine trtexec wrote.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

__all__ = ["register", "run", "EXIT_NO_TENSORRT"]

EXIT_NO_TENSORRT = 3


def register(subparsers) -> None:
    p = subparsers.add_parser("build-engine", help="build TensorRT engines for a bundle (cached beside it)",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("bundle", type=Path, help="bundle folder or .zip")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                   help="engine precision (int8 needs a bundle exported with --int8-image; default fp16)")
    p.add_argument("--batch", default="1,1,8", help="optimisation profile MIN,OPT,MAX over the batch (default 1,1,8)")
    p.add_argument("--tower", choices=("image", "text", "both"), default="image",
                   help="which encoder (the text tower is only needed for free-text labels)")
    p.add_argument("--timing-cache", nargs="?", const="", default=None, metavar="PATH",
                   help="reuse/update a timing cache (default path: <cache>/timing.cache)")
    p.add_argument("--workspace", type=int, default=None, metavar="MB", help="builder workspace limit in MiB")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="engine cache (default: $USCLIP_ENGINE_CACHE, else the user cache folder)")
    p.add_argument("--force", action="store_true", help="rebuild even when a valid cached engine exists")
    p.add_argument("--target", choices=("jetson", "x86"), default="jetson",
                   help="trtexec path in the printed command when TensorRT is missing")
    p.add_argument("--trt-major", type=int, choices=(10, 11), default=10,
                   help="TensorRT major version the printed trtexec line is for (10: JetPack 6)")
    p.add_argument("--adopt", type=Path, default=None, metavar="ENGINE",
                   help="register an engine built by the printed trtexec line (needs --trt-version)")
    p.add_argument("--trt-version", default=None, help="with --adopt: the TensorRT version that built it")
    p.add_argument("--gpu", default=None, metavar="NAME@CC",
                   help="with --adopt: GPU name and compute capability, e.g. 'Orin@8.7' (default: this GPU)")
    p.set_defaults(func=run)


def _gpu(arg: str | None):
    from ..engine_cache import GpuInfo, gpu_info

    if not arg:
        return gpu_info()
    name, sep, cc = arg.rpartition("@")
    if not sep or not name or not cc:
        raise ValueError(f"--gpu: expected NAME@CC (e.g. 'Orin@8.7'), found {arg!r}")
    return GpuInfo(name, cc)


def _print_trtexec(bundle, towers, args, profile, cache: Path, why: str) -> int:
    """Without TensorRT: one short line per engine to run on the target (stdout), and the
    --adopt line that registers its result (stderr). The full trtexec command goes into a
    script beside the engine: with fp32 pins it is kilobytes of --layerPrecisions."""
    from ..engine_build import flavour_for_version, plan_build, trtexec_command

    flavour = flavour_for_version(args.trt_major)
    plans = [plan_build(bundle, t, args.precision, profile, flavour) for t in towers]  # refuse first
    cache.mkdir(parents=True, exist_ok=True)  # trtexec's --saveEngine folder must exist
    batch = f"{profile.min},{profile.opt},{profile.max}"
    print(f"usclip build-engine: {why}.\nOn the target (TensorRT {args.trt_major}, {args.target}) run the "
          "line(s) below (each is a script holding the full trtexec command):", file=sys.stderr)
    adopt = []
    for plan in plans:
        if bundle.source.is_file():  # a .zip: its files live in a temp folder removed on exit
            keep = cache / "onnx" / plan.onnx_path.name
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plan.onnx_path, keep)
            plan = replace(plan, onnx_path=keep)
        stem = f"{plan.tower}-{args.precision}-b{profile.min}_{profile.opt}_{profile.max}-trtexec"
        engine = cache / f"{stem}.engine"
        tc = (args.timing_cache or str(cache / "timing.cache")) if args.timing_cache is not None else None
        cmd = trtexec_command(plan, engine, target=args.target, workspace_mb=args.workspace, timing_cache=tc)
        script = cache / f"{stem}.sh"
        script.write_text("#!/bin/sh\n# written by usclip build-engine (TensorRT not installed where it ran)\n"
                          f"exec {shlex.join(cmd)}\n")
        script.chmod(0o755)
        print(f"sh {shlex.quote(str(script))}")
        pins = f", {len(plan.fp32_layers)} layers kept fp32" if plan.fp32_layers else ""
        print(f"  ({plan.tower} encoder: {cmd[0]} --onnx={plan.onnx_path.name} ... {len(cmd)} arguments{pins})",
              file=sys.stderr)
        adopt.append(f"usclip build-engine {shlex.quote(str(args.bundle))} --precision {args.precision} "
                     f"--batch {batch} --tower {plan.tower} --adopt {shlex.quote(str(engine))} "
                     f"--trt-version VERSION")
    print("then register each engine here, with the TensorRT version that built it "
          f"(e.g. {'10.3.0 on JetPack 6' if args.trt_major == 10 else '11.0.0'}):", file=sys.stderr)
    for line in adopt:
        print(f"  {line}", file=sys.stderr)
    return EXIT_NO_TENSORRT


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle
    from ..engine_build import adopt_engine, build_engine, ensure_engine, flavour_for_version, import_tensorrt
    from ..engine_cache import cache_dir_for, parse_batch
    from ..errors import BackendUnavailableError

    profile = parse_batch(args.batch)
    towers = ("image", "text") if args.tower == "both" else (args.tower,)
    with Bundle.open(args.bundle) as bundle:
        cache = args.cache_dir or cache_dir_for(bundle.source)
        if args.adopt is not None:
            if not args.trt_version or len(towers) != 1:
                raise ValueError("--adopt: needs --trt-version and a single --tower")
            flavour = flavour_for_version(args.trt_version)
            out = adopt_engine(bundle, args.adopt, towers[0], args.precision, profile,
                               tensorrt_version=args.trt_version, gpu=_gpu(args.gpu), flavour=flavour,
                               cache_dir=cache)
            print(out)
            return 0
        try:
            trt = import_tensorrt()
        except BackendUnavailableError as e:
            return _print_trtexec(bundle, towers, args, profile, Path(cache).resolve(), str(e))
        timing = (args.timing_cache or str(Path(cache) / "timing.cache")) if args.timing_cache is not None else None
        results = []
        for tower in towers:
            kw = dict(trt=trt, cache_dir=cache, workspace_mb=args.workspace, timing_cache=timing)
            path = (build_engine(bundle, tower, args.precision, profile, **kw) if args.force
                    else ensure_engine(bundle, tower, args.precision, profile, **kw))
            results.append({"tower": tower, "engine": str(path), "precision": args.precision, "batch": str(profile),
                            "tensorrt": str(trt.__version__)})
        print(json.dumps(results, indent=1))
    return 0
