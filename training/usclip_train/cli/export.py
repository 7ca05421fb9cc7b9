"""``usclip export CHECKPOINT --out BUNDLE``: a training checkpoint -> the model bundle."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Checked by the usclip CLI before registering: without them the command says what to install.
REQUIRES = ("torch", "open_clip")
EXTRA = "train"
HELP = "export a checkpoint to a model bundle (ONNX towers, class embeddings, tokenizer)"

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help=HELP,
        description="Export a usclip checkpoint folder (or a run folder: its latest checkpoint) to a "
                    "verified model bundle folder, or one .zip with --zip.")
    p.add_argument("checkpoint", type=Path, help="checkpoint folder or run folder")
    p.add_argument("--out", type=Path, required=True, help="bundle folder (or .zip path with --zip)")
    p.add_argument("--zip", action="store_true", help="write one .zip file instead of a folder")
    p.add_argument("--fp16", action="store_true",
                   help="also ship fp16 encoders (LayerNorm/softmax/L2-norm kept fp32) for GPU runtimes")
    p.add_argument("--int8-text", action="store_true",
                   help="ship the text encoder int8-quantised (dynamic) instead of fp32: about 4x smaller")
    p.add_argument("--int8-image", metavar="CALIB", nargs="?", const="synthetic", default=None,
                   help="also ship int8 image encoders calibrated on CALIB (a folder of frames, or "
                        "'synthetic', the default when the flag is given alone): the Q/DQ file TensorRT "
                        "builds from (int8) and the uint8-activation file onnxruntime runs on x86 CPUs "
                        "(int8_cpu, chosen by default on x86 CPUs with AVX2/VNNI/AMX when it agrees with fp32)")
    p.add_argument("--int8-for", choices=("both", "cpu", "tensorrt"), default="both",
                   help="which int8 image files --int8-image writes: both (default), cpu (int8_cpu only, "
                        "for CPU devices and a smaller bundle) or tensorrt (int8 only)")
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the fp32 image encoder's weights as float16 (half size, fp32 compute)")
    p.add_argument("--calib-frames", type=int, default=64, help="calibration frames for --int8-image")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--prompts", choices=("held_out", "train"), default="held_out",
                   help="taxonomy templates the class embeddings are built from: held_out (never "
                        "training captions; default) or train (the template captions)")
    p.add_argument("--calib-data", metavar="DIR", type=Path, default=None,
                   help="fit the triage calibration (temperatures, OOD score, thresholds) on this data "
                        "set's validation split, as usclip calibrate does (docs/triage.md)")
    p.add_argument("--calib-split", default="valid", help="split of --calib-data to fit on (default valid)")
    p.add_argument("--bn-data", metavar="DIR", type=Path, default=None,
                   help="re-estimate the image tower's BatchNorm statistics on this data set's training "
                        "split through the SDK's pixel path before exporting (convolutional towers; "
                        "docs/training.md)")
    p.add_argument("--bn-frames", type=int, default=512, help="frames for --bn-data (default 512)")
    p.add_argument("--sign", metavar="KEY", type=Path, default=None,
                   help="sign the bundle with this private key (from usclip keygen): manifest.sig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from usclip_sdk.bundle import Bundle
    from usclip_train.export.bundle_writer import export_checkpoint

    out = args.out
    if args.zip and out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out: {out} exists (pass --overwrite to replace it)")
    if args.sign is not None:
        from usclip_sdk.signing import load_private_key

        load_private_key(args.sign)  # a bad key fails now, not after minutes of export
    print(f"exporting {args.checkpoint} -> {out}", file=sys.stderr)
    path = export_checkpoint(args.checkpoint, out, as_zip=args.zip, fp16=args.fp16,
                             int8_text=args.int8_text, int8_image=args.int8_image,
                             calib_frames=args.calib_frames, overwrite=args.overwrite,
                             fp16_weights=args.fp16_weights, prompt_set=args.prompts,
                             bn_data=args.bn_data, bn_frames=args.bn_frames, int8_for=args.int8_for,
                             progress=lambda line: print(f"export: {line}", file=sys.stderr, flush=True))
    if args.calib_data is not None:  # before signing: the signature covers the calibrated manifest
        from usclip_sdk.calibrate import calibrate_bundle

        path, fit = calibrate_bundle(path, args.calib_data, path, split=args.calib_split, overwrite=True)
        print(f"export: calibrated on {fit['frames']} frames of {args.calib_data} ({args.calib_split})",
              file=sys.stderr)
    signed = ""
    if args.sign is not None:
        from usclip_sdk.signing import sign_bundle

        signed = f"\tsigned={sign_bundle(path, args.sign).key_id}"  # re-verified inside
    with Bundle.open(path, trusted_keys=()) as b:
        sizes = sum(e.size for e in b.manifest.files.values())
        print(f"{path}\tmodel={b.manifest.model.name}\tid={b.id[:16]}\tbytes={sizes}\t"
              f"image={','.join(b.precisions('image'))}\ttext={','.join(b.precisions('text'))}{signed}")
    return 0
