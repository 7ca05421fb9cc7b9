"""GPU timing of the CUDA preprocess kernel (CUDA events, warm-up, median) against the
memory-bandwidth floor and against torch (F.interpolate(antialias=True) + normalise).

Inputs live on the device (torch tensors, zero-copy through __cuda_array_interface__); the
output goes into a preallocated device tensor, as with a TensorRT input binding.
Floor = (crop + mask bytes read + output bytes written) / measured device-to-device copy rate
(read + write counted). Writes JSON (--json) and prints a table.
"""
from __future__ import annotations

import argparse
import json

import torch

from gpu_timing import copy_rate, events_ms
import torch.nn.functional as F

from usclip_sdk.ops import preprocess
from usclip_sdk.ops.preprocess import CLIP_MEAN, CLIP_STD

__all__ = ["main"]


def torch_pipeline(frames, mask, roi, mean, std, size):
    x0, y0, x1, y1 = roi
    crop = frames[:, y0:y1, x0:x1].permute(0, 3, 1, 2).float()
    if mask is not None:
        crop = crop * mask[y0:y1, x0:x1].to(crop.dtype)
    small = F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False)
    return (small / 255.0 - mean) / std


def run(batches=(1, 32)) -> list[dict]:
    rate = copy_rate()
    gen = torch.Generator(device="cuda").manual_seed(0)
    mean = torch.tensor(CLIP_MEAN, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device="cuda").view(1, 3, 1, 1)
    rows = []
    for (h, w) in ((1080, 1920), (720, 1280)):
        roi = (int(w * 0.16), int(h * 0.055), int(w * 0.84), int(h * 0.9))
        mask = torch.zeros((h, w), dtype=torch.uint8, device="cuda")
        mask[roi[1] + 20:roi[3] - 20, roi[0] + 40:roi[2] - 40] = 1
        for n in batches:
            frames = torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, device="cuda",
                                   generator=gen)
            for use_mask in (True, False):
                m = mask if use_mask else None
                out = torch.empty((n, 3, 224, 224), device="cuda")
                def call():
                    return preprocess(frames, roi=roi, mask=m, out=out, device="cuda",
                                      stream=torch.cuda.current_stream())
                ms = events_ms(call)
                t_ms = events_ms(lambda: torch_pipeline(frames, m, roi, mean, std, (224, 224)))
                diff = float((torch_pipeline(frames, m, roi, mean, std, (224, 224)) - out)
                             .abs().mean())
                cw, ch = roi[2] - roi[0], roi[3] - roi[1]
                nbytes = n * cw * ch * 3 + (cw * ch if use_mask else 0) + out.numel() * 4
                floor_ms = nbytes / rate * 1e3  # each byte crosses memory once
                rows.append(dict(frame=f"{w}x{h}", batch=n, mask=use_mask, usclip_ms=ms,
                                 torch_ms=t_ms, speedup_vs_torch=t_ms / ms, floor_ms=floor_ms,
                                 pct_of_copy_bw=100 * floor_ms / ms, copy_gbs=rate / 1e9,
                                 mean_abs_diff_vs_torch=diff))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="gpu_preprocess.json")
    args = ap.parse_args()
    rows = run()
    print(f"device={torch.cuda.get_device_name()} d2d copy={rows[0]['copy_gbs']:.0f} GB/s")
    print(f"{'frame':>10} {'N':>3} {'mask':>5} {'usclip ms':>10} {'torch ms':>9} {'x torch':>8} "
          f"{'floor ms':>9} {'% of bw':>8} {'|diff|':>7}")
    for r in rows:
        print(f"{r['frame']:>10} {r['batch']:>3} {str(r['mask']):>5} {r['usclip_ms']:>10.4f} "
              f"{r['torch_ms']:>9.4f} {r['speedup_vs_torch']:>7.1f}x {r['floor_ms']:>9.4f} "
              f"{r['pct_of_copy_bw']:>7.0f}% {r['mean_abs_diff_vs_torch']:>7.4f}")
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
