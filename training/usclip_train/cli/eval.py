"""``usclip eval CHECKPOINT_OR_BUNDLE --data DIR [--split test] [--out DIR] [--linear-probe]``

Runs the paper's protocol (zero-shot per UDAF dimension, retrieval R@k both ways, optional
linear probe) on a data set in the US-365K layout; writes results.json + report.md + plots
into --out and prints the summary metrics (JSON with --json) on stdout.

A checkpoint (a folder from ``usclip train``, or a run folder: its latest checkpoint) is
rebuilt with ``usclip_train.checkpoint.load_model`` and fed the training pipeline's pixels
(``usclip_train.data.FrameTransform``); a bundle (folder with manifest.json, or
.zip) is run through the SDK's onnxruntime backend with its own class embeddings.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Checked by the usclip CLI before registering: without them the command says what to install.
REQUIRES = ("torch", "open_clip")
EXTRA = "train"
HELP = "evaluate a checkpoint or bundle (zero-shot, retrieval, linear probe)"
DESCRIPTION = """\
Run the paper's protocol (zero-shot per diagnostic dimension, retrieval R@k both ways, optional
linear probe) on a data set in the US-365K layout; write results.json, report.md and plots into
--out and print the summary metrics (all results with --json).

A checkpoint (a folder from usclip train, or a run folder: its latest checkpoint) is fed the
training pixels; a bundle (folder with manifest.json, or .zip) runs on the SDK's onnxruntime
backend with its own class embeddings."""

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="CHECKPOINT_OR_BUNDLE", help="checkpoint/run folder, or bundle folder/.zip")
    p.add_argument("--data", required=True, help="US-365K layout root (train/valid/test.jsonl, full_data.json)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", default=None, help="output folder (default: <model>-eval-<split>)")
    p.add_argument("--linear-probe", action="store_true", help="also fit a linear probe on --probe-split features")
    p.add_argument("--probe-split", default="train", help="split the probe is trained on (default: train)")
    p.add_argument("--probe-c", type=float, nargs="+", default=None,
                   help="the probe's C values (inverse L2 strength, sklearn's C); several = a sweep "
                        "on a held-out 20%% of the probe split (default: 0.01 0.1 1 10)")
    p.add_argument("--fields", nargs="+", default=None, help="dimensions to classify (default: all nine)")
    p.add_argument("--max-samples", type=int, default=None, help="seeded random subset of the split")
    p.add_argument("--probe-max-samples", type=int, default=None, help="seeded subset of the probe's training split")
    p.add_argument("--batch-size", type=int, default=64, help="images per encoder call (default 64)")
    p.add_argument("--workers", type=int, default=0, help="image-loading processes (checkpoints only)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="checkpoint weights' dtype; for a bundle, the ONNX precision to run (fp32, fp16)")
    p.add_argument("--no-retrieval", action="store_true", help="skip retrieval")
    p.add_argument("--no-plots", action="store_true", help="write report.md without PNG plots")
    p.add_argument("--json", action="store_true", help="print the full results JSON instead of the summary")
    p.set_defaults(func=run)


def _device(arg: str | None) -> str:
    import torch

    if arg:
        return arg
    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_checkpoint(args, common: dict) -> dict:
    from usclip_train.checkpoint import load_model
    from usclip_train.evaluate import evaluate

    from usclip_train.data import FrameTransform

    device = _device(args.device)
    model, preprocess, tokenizer = load_model(args.model, device=device, precision=args.precision)
    # exactly the training pixels (stored region masks when the data set has them)
    masks = Path(args.data) / "masks"
    transform = FrameTransform(preprocess, masks if masks.is_dir() else None)
    weights = _graph_weights(args.model, model, tokenizer, common.get("fields"), common["progress"])
    return evaluate(model, args.data, args.split, image_transform=transform, tokenizer=tokenizer,
                    device=device, num_workers=args.workers, name=str(Path(args.model)),
                    class_weights=weights, **common)


def _graph_weights(path, model, tokenizer, fields, progress):
    """Graph anchors for a checkpoint trained with the attribute graph (export.bundle_writer.
    graph_class_weights), None for one without it: the text tower's anchors."""
    from usclip_train.checkpoint import read_checkpoint
    from usclip_train.export.bundle_writer import _trained_fusion, graph_class_weights

    fusion = _trained_fusion(read_checkpoint(path))
    if fusion is None:
        return None
    progress("encoding the class prompts through the attribute graph of each class's own label")
    return graph_class_weights(model, tokenizer, fusion, fields)


def _run_bundle(args, common: dict) -> dict:
    from usclip_train.evaluate import evaluate
    from usclip_train.evaluate.bundle_encoders import bundle_class_weights, from_bundle

    device = {"cpu": "cpu", None: "auto"}.get(args.device, "cuda")
    enc, bundle = from_bundle(args.model, device=device, precision=args.precision,
                              batch_size=args.batch_size)
    try:
        return evaluate(enc, args.data, args.split, class_weights=bundle_class_weights(bundle), **common)
    finally:
        bundle.close()


def run(args) -> int:
    from usclip_train.evaluate.bundle_encoders import is_bundle

    model_path = Path(args.model)
    if not model_path.exists():
        raise FileNotFoundError(f"CHECKPOINT_OR_BUNDLE: {model_path} does not exist")
    out = Path(args.out) if args.out else Path(f"{model_path.name.removesuffix('.zip')}-eval-{args.split}")
    from usclip_train.evaluate import ProbeConfig

    probe = ProbeConfig(c_sweep=tuple(args.probe_c)) if args.probe_c else ProbeConfig()
    common = dict(out_dir=out, probe_config=probe, fields=args.fields, retrieval=not args.no_retrieval,
                  linear_probe_split=args.probe_split if args.linear_probe else None,
                  max_samples=args.max_samples, probe_max_samples=args.probe_max_samples,
                  batch_size=args.batch_size, plots=not args.no_plots,
                  progress=lambda line: print(f"eval: {line}", file=sys.stderr, flush=True))
    result = _run_bundle(args, common) if is_bundle(model_path) else _run_checkpoint(args, common)
    print(json.dumps(result if args.json else result["metrics"], indent=2))
    print(f"wrote {out / 'results.json'} and {out / 'report.md'}", file=sys.stderr)
    return 0
