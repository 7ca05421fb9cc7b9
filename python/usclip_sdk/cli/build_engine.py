"""``usclip build-engine BUNDLE --precision fp32|fp16|int8 --batch MIN,OPT,MAX``.

Builds TensorRT engines for the bundle's encoders into the cache beside the bundle (TensorRT
10 or 11, chosen by capability; see ``usclip_sdk.engine_build``). Lives in the SDK, not the
training package: building needs TensorRT and the bundle, never torch. Where ``import
tensorrt`` fails it prints the equivalent trtexec command lines for the target and exits 3;
``--adopt ENGINE`` then registers the engine trtexec wrote.
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
    p.add_argument("bundle", type=Path)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--batch", default="1,1,8", help="optimisation profile MIN,OPT,MAX over the batch (default 1,1,8)")
    p.add_argument("--tower", choices=("image", "text", "both"), default="image",
                   help="which encoder (the text tower is only needed for free-text labels)")
    p.add_argument("--timing-cache", nargs="?", const="", default=None, metavar="PATH",
                   help="reuse/update a timing cache (default path: <cache>/timing.cache)")
    p.add_argument("--workspace", type=int, default=None, metavar="MB", help="builder workspace limit in MiB")
    p.add_argument("--cache-dir", type=Path, default=None, help="engine cache (default: <bundle>.engines)")
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


def _print_trtexec(bundle, towers, args, profile, cache: Path) -> int:
    from ..engine_build import plan_build, trtexec_command

    flavour = "flags" if args.trt_major == 10 else "strongly_typed"
    print(f"usclip build-engine: TensorRT is not importable here; run these on the target "
          f"(TensorRT {args.trt_major}.x, {args.target}), then register each engine with --adopt:", file=sys.stderr)
    for tower in towers:
        plan = plan_build(bundle, tower, args.precision, profile, flavour)
        if bundle.source.is_file():  # a .zip: its files live in a temp folder removed on exit
            keep = cache / "onnx" / plan.onnx_path.name
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plan.onnx_path, keep)
            plan = replace(plan, onnx_path=keep)
        engine = cache / f"{tower}-{args.precision}-b{profile.min}_{profile.opt}_{profile.max}-trtexec.engine"
        tc = (args.timing_cache or str(cache / "timing.cache")) if args.timing_cache is not None else None
        print(shlex.join(trtexec_command(plan, engine, target=args.target, workspace_mb=args.workspace,
                                         timing_cache=tc)))
    return EXIT_NO_TENSORRT


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle
    from ..engine_build import adopt_engine, build_engine, ensure_engine, import_tensorrt
    from ..engine_cache import cache_dir_for, parse_batch
    from ..errors import BackendUnavailableError

    profile = parse_batch(args.batch)
    towers = ("image", "text") if args.tower == "both" else (args.tower,)
    with Bundle.open(args.bundle) as bundle:
        cache = args.cache_dir or cache_dir_for(bundle.source)
        if args.adopt is not None:
            if not args.trt_version or len(towers) != 1:
                raise ValueError("--adopt: needs --trt-version and a single --tower")
            flavour = "flags" if int(args.trt_version.split(".")[0]) <= 10 else "strongly_typed"
            out = adopt_engine(bundle, args.adopt, towers[0], args.precision, profile, tensorrt_version=args.trt_version,
                               gpu=_gpu(args.gpu), flavour=flavour, cache_dir=cache)
            print(out)
            return 0
        try:
            trt = import_tensorrt()
        except BackendUnavailableError as e:
            print(f"usclip build-engine: {e}", file=sys.stderr)
            return _print_trtexec(bundle, towers, args, profile, Path(cache))
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
