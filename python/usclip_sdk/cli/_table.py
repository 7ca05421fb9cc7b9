"""The triage table that `demo` and `classify` print (one row per frame)."""
from __future__ import annotations

from typing import Iterable, Mapping, TextIO

from ..prediction import Prediction

__all__ = ["print_table", "KEY_ATTRIBUTES", "NOTICE", "LEGEND"]

NOTICE = ("usclip is for research and development use only: it is not a medical device and "
          "must not be used for diagnosis.")

# What a sonographer glances at first, after organ and diagnosis; each value is printed after
# its dimension's short name ("vascularity none", never a bare "none").
KEY_ATTRIBUTES = ("Echogenicity", "Margins", "PosteriorAcoustics", "Vascularity")
_DIM_NAME = {"Echogenicity": "echo", "Margins": "margins", "PosteriorAcoustics": "posterior",
             "Vascularity": "vascularity"}
_SHORT = {"ill-defined/indistinct": "ill-defined", "reduced/diminished": "reduced",
          "normal/regular": "normal", "indeterminate/inhomogeneous vascularity": "inhomogeneous",
          "mixed echogenicity": "mixed", "no": "none"}


def _attrs(p: Prediction) -> str:
    out = []
    for f in KEY_ATTRIBUTES:
        a = p.attributes.get(f)
        if a is not None:
            out.append(f"{_DIM_NAME.get(f, f)} {_SHORT.get(a.value, a.value) if a.applicable else 'n/a'}")
    if out and all(x.endswith(" n/a") for x in out):
        return "n/a (no lesion)"
    return ", ".join(out)


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` columns; a cut value ends in "~" so it never reads as a word."""
    return text if len(text) <= width else text[:width - 1] + "~"


LEGEND = ("p: the model's probability for its answer among that dimension's values; ms: the "
          "frame's latency (\"reused\": --every re-showed the last result); n/a: the dimension "
          "does not apply (no lesion).")


def _truth(labels: Mapping[str, list] | None, field: str) -> str:
    return " | ".join(labels.get(field, ())) if labels else "-"


def print_table(rows: Iterable[tuple[str, Prediction]], out: TextIO, custom: bool = False,
                truth: Mapping[str, Mapping[str, list]] | None = None) -> None:
    """One row per frame; ``truth`` (file name -> labels, e.g. examples/labels.json) adds the
    true organ and diagnosis beside the model's. Key attributes come last, uncut."""
    # status first: anything but "ok" means the SDK does not stand behind the row (docs/triage.md)
    head = ["frame", "status", "organ", "diagnosis" if not custom else "label", "p", "ms"]
    widths = [22, 19, 26, 20, 4, 7]
    if truth is not None:
        head[4:4], widths[4:4] = ["true organ", "true diagnosis"], [26, 20]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*head, "key attributes"), file=out)
    print("  ".join("-" * w for w in widths) + "  " + "-" * 14, file=out)
    previous = None
    for name, p in rows:
        ms = "reused" if p is previous else f"{p.timings.get('total', 0.0):.1f}"
        cells = [_fit(name, 22), _fit(p.status, 19), _fit(p.organ, 26), _fit(p.label, 20), f"{p.score:.2f}", ms]
        if truth is not None:
            labels = truth.get(name.split("[")[0])
            cells[4:4] = [_fit(_truth(labels, "Organ_level"), 26), _fit(_truth(labels, "Diagnosis"), 20)]
        print(fmt.format(*cells, _attrs(p)), file=out, flush=True)
        previous = p
    print(LEGEND, file=out)
    print(NOTICE, file=out)
