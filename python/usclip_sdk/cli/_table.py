"""The triage table that `demo` and `classify` print (one row per frame)."""
from __future__ import annotations

from typing import Iterable, TextIO

from ..prediction import Prediction

__all__ = ["print_table", "KEY_ATTRIBUTES"]

# What a sonographer glances at first, after organ and diagnosis.
KEY_ATTRIBUTES = ("Echogenicity", "Margins", "PosteriorAcoustics", "Vascularity")
_SHORT = {"ill-defined/indistinct": "ill-defined", "reduced/diminished": "reduced",
          "normal/regular": "normal", "indeterminate/inhomogeneous vascularity": "inhomogeneous",
          "mixed echogenicity": "mixed", "no": "none"}


def _attrs(p: Prediction) -> str:
    out = []
    for f in KEY_ATTRIBUTES:
        a = p.attributes.get(f)
        if a is not None:
            out.append(_SHORT.get(a.value, a.value))
    return ", ".join(out)


def print_table(rows: Iterable[tuple[str, Prediction]], out: TextIO, custom: bool = False) -> None:
    head = ("frame", "organ", "diagnosis" if not custom else "label", "key attributes", "conf", "ms")
    widths = (22, 26, 20, 46, 5, 7)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*head), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for name, p in rows:
        organ = p.organ
        label = p.label
        print(fmt.format(name[-22:], organ[:26], label[:20], _attrs(p)[:46], f"{p.score:.2f}",
                         f"{p.timings.get('total', 0.0):.1f}"), file=out, flush=True)
