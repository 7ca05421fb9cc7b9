"""What deflate costs a .zip bundle: size and ``Bundle.open`` time (unzip + sha256 of every
member), the same members stored and deflated (usclip_sdk.signing.ZIP_OPTIONS), in one run.

    python bench/bench_bundle_open.py python/usclip_sdk/models/usclip-edge.zip --repeats 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from usclip_sdk.bundle import Bundle
from usclip_sdk.signing import ZIP_OPTIONS


def rezip(src: Path, dst: Path, **options) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", **options) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item))


def open_ms(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with Bundle.open(path):
            pass
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stored, deflated = Path(tmp) / "stored.zip", Path(tmp) / "deflated.zip"
        rezip(a.bundle, stored, compression=zipfile.ZIP_STORED)
        rezip(a.bundle, deflated, **ZIP_OPTIONS)
        open_ms(stored, 1)  # page cache warm for both
        open_ms(deflated, 1)
        s_ms, d_ms = open_ms(stored, a.repeats), open_ms(deflated, a.repeats)
        out = {"bundle": str(a.bundle), "stored_bytes": stored.stat().st_size,
               "deflated_bytes": deflated.stat().st_size, "open_ms_stored": round(s_ms, 1),
               "open_ms_deflated": round(d_ms, 1), "open_ratio_deflated_over_stored": round(d_ms / s_ms, 2),
               "repeats": a.repeats, "options": {k: int(v) for k, v in ZIP_OPTIONS.items()}}
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
