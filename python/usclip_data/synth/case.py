"""Synthetic cases: which organ, which probe, which lesion, and what the report labels say.

A case is sampled once and then rendered as several views (``render.render_view``). The
lesion's *true* attributes live in ``LesionSpec``; ``CaseSpec.labels`` is what an annotator
wrote down, a subset of the truth: some dimensions are left unlabelled on purpose, like the
real US-365K records, but a written label never contradicts what is rendered.

Attribute combinations follow clinical plausibility (a simple cyst is anechoic, sharply
marginated, with posterior enhancement and no flow; a calcified nodule shadows; a normal scan
has no lesion attributes), with controlled randomness inside each diagnosis.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from usclip_sdk import taxonomy

__all__ = ["OrganModel", "ORGAN_MODELS", "LesionSpec", "CaseSpec", "sample_case", "PROBES"]

# Probe families: centre frequency range (MHz) and imaging depth range (mm).
PROBES: dict[str, dict[str, tuple[float, float]]] = {
    "linear": {"f0": (7.0, 15.0), "depth": (25.0, 55.0)},
    "convex": {"f0": (2.0, 5.0), "depth": (90.0, 200.0)},
    "phased": {"f0": (2.0, 4.0), "depth": (120.0, 180.0)},
}


@dataclass(frozen=True)
class OrganModel:
    """An anatomy model the renderer draws (``anatomy.draw_<key>``) and what fits it."""

    key: str
    organ: str  # exact taxonomy organ name
    probe: str
    depth_mm: tuple[float, float]
    diagnoses: dict[str, float]  # diagnosis -> sampling weight
    lesion_mm: tuple[float, float] = (6.0, 30.0)  # lesion long-axis range
    f0_mhz: tuple[float, float] | None = None  # centre frequency range; None: the probe family's


_N = "normal appearance"
ORGAN_MODELS: dict[str, OrganModel] = {m.key: m for m in (
    OrganModel("liver", "Liver", "convex", (120, 180),
               {"nodule": 2, "cyst": 2, "mass": 2, "fluid collection": 0.5, _N: 2}, (10, 45)),
    OrganModel("gallbladder", "Gallbladder and bile ducts", "convex", (100, 150),
               {"nodule": 2, "mass": 0.7, "fluid collection": 0.5, _N: 2}, (5, 20)),
    OrganModel("kidney", "Kidney and ureter", "convex", (110, 160),
               {"cyst": 3, "mass": 1.5, "nodule": 0.5, _N: 2}, (10, 40)),
    OrganModel("bladder", "Bladder", "convex", (100, 150),
               {"mass": 2, "nodule": 1, _N: 2}, (6, 25)),
    OrganModel("uterus", "Uterus", "convex", (110, 160),
               {"mass": 2, "nodule": 1.5, "cyst": 0.5, _N: 2}, (12, 40)),
    OrganModel("ovary", "Adnexa", "convex", (90, 130),
               {"cyst": 3, "mass": 1, "fluid collection": 0.7, _N: 1.5}, (15, 50)),
    OrganModel("pleura", "Pleural space", "convex", (110, 170),
               {"fluid collection": 3, _N: 1}, (25, 60)),
    OrganModel("testis", "Scrotum", "linear", (30, 45),
               {"mass": 1.5, "cyst": 1.5, "nodule": 1, "fluid collection": 0.7, _N: 2}, (4, 16)),
    OrganModel("thyroid", "Thyroid gland", "linear", (30, 45),
               {"nodule": 4, "cyst": 1.5, "mass": 0.5, _N: 2}, (5, 18)),
    OrganModel("lymph_node", "Lymph nodes", "linear", (25, 40),
               {"nodule": 2, "mass": 1, "fluid collection": 0.4, _N: 2}, (6, 18)),
    OrganModel("breast", "Breast", "linear", (30, 50),
               {"mass": 3, "nodule": 2, "cyst": 2, "fluid collection": 0.4, _N: 2}, (6, 25)),
    OrganModel("soft_tissue", "Soft tissues", "linear", (30, 50),
               {"mass": 1.5, "fluid collection": 1.5, "cyst": 1, "nodule": 1, _N: 1.5}, (8, 30)),
    OrganModel("artery", "Peripheral arteries", "linear", (25, 40),
               {"nodule": 1, _N: 2}, (4, 12)),
    OrganModel("heart", "Heart and mediastinum", "phased", (130, 180),
               {"mass": 1, "fluid collection": 1, _N: 3}, (10, 30)),
    # Added for taxonomy coverage (anatomy_extended.py): every body system, 32 organs.
    OrganModel("pancreas", "Pancreas", "convex", (110, 160),
               {"mass": 2, "cyst": 1.5, "nodule": 0.5, "fluid collection": 0.7, _N: 2}, (10, 40)),
    OrganModel("spleen", "Spleen", "convex", (100, 150),
               {"cyst": 1.5, "nodule": 1.5, "mass": 1, "fluid collection": 0.5, _N: 2}, (8, 35)),
    OrganModel("great_vessels", "Retroperitoneum and great vessels", "convex", (110, 170),
               {"mass": 1.5, "fluid collection": 1, "nodule": 0.5, _N: 2}, (10, 40)),
    OrganModel("appendix", "Appendix", "linear", (35, 55),
               {"fluid collection": 2, "mass": 1, "nodule": 0.5, _N: 2}, (8, 30), (5.0, 9.0)),
    OrganModel("abdominal_wall", "Abdominal wall", "linear", (30, 50),
               {"mass": 1.5, "fluid collection": 1.5, "cyst": 0.7, "nodule": 1, _N: 1.5}, (8, 30)),
    OrganModel("penis", "Penis and perineum", "linear", (25, 40),
               {"nodule": 1.5, "mass": 0.7, "fluid collection": 0.5, _N: 2}, (4, 15)),
    OrganModel("salivary", "Salivary glands", "linear", (30, 45),
               {"nodule": 2, "mass": 1.5, "cyst": 1, _N: 2}, (5, 25)),
    OrganModel("ocular", "Ocular", "linear", (35, 50),
               {"mass": 1.5, "fluid collection": 1, "nodule": 0.5, _N: 2}, (4, 15)),
    OrganModel("axilla", "Axilla", "linear", (30, 50),
               {"nodule": 2, "mass": 1.5, "fluid collection": 0.7, "cyst": 0.5, _N: 2}, (6, 25)),
    OrganModel("shoulder", "Shoulder", "linear", (30, 50),
               {"fluid collection": 2, "cyst": 0.7, "mass": 0.7, _N: 2}, (6, 25)),
    OrganModel("knee", "Knee", "linear", (30, 50),
               {"cyst": 2, "fluid collection": 2, "mass": 0.5, _N: 2}, (8, 35)),
    OrganModel("nerve", "Peripheral nerves", "linear", (25, 40),
               {"mass": 1.5, "nodule": 1, _N: 2}, (5, 20)),
    OrganModel("pulmonary", "Pulmonary", "convex", (100, 160),
               {"mass": 1, "nodule": 0.7, "fluid collection": 0.7, _N: 2}, (10, 40)),
    OrganModel("neonatal_brain", "Neonatal brain and spine", "convex", (70, 100),
               {"cyst": 2, "fluid collection": 1.5, "mass": 0.5, _N: 2}, (5, 25), (5.0, 8.0)),
    OrganModel("infant_hip", "Infant hip and knee", "linear", (35, 50),
               {"fluid collection": 1.5, "cyst": 0.5, _N: 3}, (5, 20)),
    OrganModel("pediatric_kidney", "Pediatric urinary tract", "convex", (70, 110),
               {"cyst": 2, "mass": 1, "nodule": 0.5, _N: 2}, (6, 30), (4.0, 7.0)),
    OrganModel("vein", "Peripheral veins", "linear", (25, 40),
               {"nodule": 1, "fluid collection": 0.5, _N: 2}, (4, 14)),
    OrganModel("fistula", "Dialysis fistula", "linear", (25, 40),
               {"fluid collection": 1, "nodule": 0.5, "mass": 0.5, _N: 2}, (5, 20)),
)}


@dataclass(frozen=True)
class LesionSpec:
    """The true, rendered attributes and geometry of one focal lesion.

    ``posterior`` is None when there is no posterior feature; ``vascularity`` is the true flow
    level (shown only where the case has Doppler on). ``center`` is (lateral, depth) as
    fractions of the organ's lesion site; ``size_mm`` is (long axis, short axis).
    ``extent`` > 0: the long axis as drawn is this fraction of the field of view's smaller
    side (``size_mm`` then only fixes the aspect ratio): a sonographer sets depth and zoom so
    the lesion under study fills a good part of the frame, which is what makes its shape,
    margins and contents readable at the model's input size. 0 draws ``size_mm`` as is.
    """

    diagnosis: str
    shape: str
    margins: str
    echogenicity: str
    internal: tuple[str, ...]
    posterior: str | None
    vascularity: str
    size_mm: tuple[float, float]
    center: tuple[float, float]
    angle_deg: float
    seed: int
    extent: float = 0.0


@dataclass(frozen=True)
class CaseSpec:
    """One synthetic patient case: rendered by ``render_view`` into several frames."""

    case_id: str
    organ_model: str  # key into ORGAN_MODELS / anatomy
    organ: str
    system: str
    probe: str  # linear | convex | phased
    f0_mhz: float
    depth_mm: float
    diagnosis: str
    lesion: LesionSpec | None
    doppler: bool
    labels: dict[str, tuple[str, ...]]
    seed: int  # fixes anatomy details shared by all views
    layout: int = 0  # scanner screen layout (same scanner for every view of a case)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        d = asdict(self)
        d["labels"] = {k: list(v) for k, v in self.labels.items()}
        return d


def _choice(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.asarray([options[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


# Per diagnosis: weights for shape, margins, echogenicity; internal-characteristic rules below.
_SHAPE = {
    "cyst": {"round": 4, "oval": 5, "lobulated": 1},
    "nodule": {"round": 2, "oval": 4, "nodular": 2, "lobulated": 1.5, "irregular": 1.5},
    "mass": {"irregular": 4, "lobulated": 3, "oval": 1.5, "round": 1, "nodular": 1},
    # No oval/round collections: an oval anechoic well-defined collection is a cyst by sight.
    "fluid collection": {"irregular": 3, "flattened": 3, "tubular/linear": 2},
}
# Long axis as a fraction of the field's smaller side: a mass is big, a nodule is small (the
# size is what tells them apart on a frame; the ranges are far apart so that the view-to-view
# scale (0.9-1.05) and the input stretch cannot make one look like the other).
_EXTENT = {"nodule": (0.26, 0.33), "cyst": (0.3, 0.45), "mass": (0.55, 0.68),
           "fluid collection": (0.42, 0.58)}
# Short axis / long axis per shape: round and oval, flattened and tubular do not overlap.
_RATIO = {"round": (0.92, 1.0), "oval": (0.45, 0.62), "flattened": (0.3, 0.38),
          "tubular/linear": (0.1, 0.14)}
_MARGINS = {"cyst": {"well-defined": 1.0},
            "nodule": {"well-defined": 6, "ill-defined/indistinct": 4},
            "mass": {"well-defined": 3, "ill-defined/indistinct": 7},
            "fluid collection": {"well-defined": 5, "ill-defined/indistinct": 5}}
_ECHO = {"cyst": {"anechoic": 1.0},
         "nodule": {"hypoechoic": 5, "isoechoic": 2.5, "hyperechoic": 2.5, "mixed echogenicity": 2},
         "mass": {"hypoechoic": 5, "mixed echogenicity": 4, "hyperechoic": 1, "isoechoic": 1},
         "fluid collection": {"anechoic": 6, "hypoechoic": 2, "mixed echogenicity": 2}}
_VASC = {"cyst": {"no": 1.0},
         "nodule": {"normal/regular": 3, "increased": 2, "reduced/diminished": 2, "no": 1.5,
                    "indeterminate/inhomogeneous vascularity": 1},
         "mass": {"increased": 4, "indeterminate/inhomogeneous vascularity": 3,
                  "normal/regular": 1, "reduced/diminished": 1},
         "fluid collection": {"no": 4, "reduced/diminished": 1.5}}


def _internal(rng: np.random.Generator, dx: str, echo: str) -> tuple[str, ...]:
    """Internal characteristics consistent with the diagnosis and echogenicity."""
    if dx == "cyst":
        return ("cystic components", "septations") if rng.random() < 0.3 else ("cystic components",)
    if dx == "fluid collection":
        if echo == "anechoic":
            return ("cystic components", "septations") if rng.random() < 0.35 else ("cystic components",)
        if echo == "hypoechoic":  # fluid full of fine low-level echoes (pus, old blood): no septa
            return ("cystic components",)
        return ("complex cystic solid",)  # mixed: debris, thick septa and a solid wall nodule
    if echo == "mixed echogenicity":  # complex cystic-solid is a collection's look (below)
        base = "mixed cystic and solid mass"
    else:  # a lesion with cystic parts is of mixed echogenicity by sight: solid only here
        base = "solid components"
    tags = [base]
    # Calcified foci in hypoechoic or mixed solid lesions (thyroid and breast types). Not in
    # iso- or hyperechoic ones: their shadow would darken the lesion below its echo class.
    if echo in ("hypoechoic", "mixed echogenicity") and rng.random() < 0.3:
        tags.append("calcifications")
    return tuple(tags)


def _posterior(rng: np.random.Generator, dx: str, echo: str, internal: tuple[str, ...]) -> str | None:
    if "calcifications" in internal:
        return "shadowing"  # calcified foci reflect and absorb: acoustic shadow
    if echo == "anechoic" or dx in ("cyst", "fluid collection"):
        return "enhancement"  # fluid attenuates less than tissue
    if "mixed cystic and solid mass" in internal or "complex cystic solid" in internal:
        return _choice(rng, {"enhancement": 2, "": 1}) or None
    # A shadowing lesion attenuates strongly, so its own deeper half darkens: only hypoechoic
    # solid lesions shadow (as breast carcinomas do); an iso- or hyperechoic one that shadowed
    # would read as hypoechoic.
    shadow = (4 if dx == "mass" else 1.5) if echo in ("hypoechoic", "mixed echogenicity") else 0
    if dx == "mass":
        return _choice(rng, {"shadowing": shadow, "": 5, "enhancement": 1}) or None
    return _choice(rng, {"": 6, "shadowing": shadow, "enhancement": 1}) or None


def _lesion(rng: np.random.Generator, model: OrganModel, dx: str) -> LesionSpec:
    shape = _choice(rng, _SHAPE[dx])
    echo = _choice(rng, _ECHO[dx])
    # An isoechoic lesion is seen only by its crisp halo: an ill-defined one would not be seen.
    margins = "well-defined" if echo == "isoechoic" else _choice(rng, _MARGINS[dx])
    internal = _internal(rng, dx, echo)
    posterior = _posterior(rng, dx, echo, internal)
    lo, hi = model.lesion_mm
    long_axis = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    short_axis = long_axis * float(rng.uniform(*_RATIO.get(shape, (0.7, 0.95))))
    extent = float(rng.uniform(*_EXTENT[dx]))
    if shape == "tubular/linear":  # a band: long enough to read as one at the input size
        extent = min(0.8, 1.4 * extent)
    return LesionSpec(
        diagnosis=dx, shape=shape, margins=margins, echogenicity=echo, internal=internal,
        posterior=posterior, vascularity=_choice(rng, _VASC[dx]),
        size_mm=(round(long_axis, 2), round(short_axis, 2)),
        center=(float(rng.uniform(-0.35, 0.35)), float(rng.uniform(0.3, 0.7))),
        angle_deg=float(rng.uniform(-20, 20)) if shape != "round" else 0.0,
        seed=int(rng.integers(0, 2**31 - 1)), extent=round(extent, 3))


def _labels(rng: np.random.Generator, model: OrganModel, lesion: LesionSpec | None,
            doppler: bool) -> dict[str, tuple[str, ...]]:
    """What the report says: organ and diagnosis always; lesion dimensions often, not always."""
    system = taxonomy.system_of(model.organ)
    labels: dict[str, tuple[str, ...]] = {f: () for f in taxonomy.FIELDS}
    labels["Diagnosis"] = (lesion.diagnosis if lesion else "normal appearance",)
    labels["Body_system_level"] = (system,)
    labels["Organ_level"] = (model.organ,)
    if lesion is None:
        return labels
    keep = 0.8  # probability that a report mentions a given rendered attribute
    if rng.random() < keep:
        labels["Shape"] = (lesion.shape,)
    if rng.random() < keep:
        labels["Margins"] = (lesion.margins,)
    if rng.random() < keep + 0.1:
        labels["Echogenicity"] = (lesion.echogenicity,)
    if rng.random() < keep:
        labels["InternalCharacteristics"] = lesion.internal
    if lesion.posterior and rng.random() < keep:
        labels["PosteriorAcoustics"] = (lesion.posterior,)
    if doppler:  # flow is only claimed where the frame shows a Doppler box
        labels["Vascularity"] = (lesion.vascularity,)
    return labels


def sample_case(rng: np.random.Generator, case_id: str) -> CaseSpec:
    """Sample one plausible case (organ, probe, diagnosis and lesion attributes).

    rng: a ``numpy.random.Generator``; the case depends on nothing else.
    case_id: an identifier carried in the result (used for case-level splits).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected numpy.random.Generator, found {type(rng).__name__}")
    key = list(ORGAN_MODELS)[int(rng.integers(len(ORGAN_MODELS)))]
    model = ORGAN_MODELS[key]
    dx = _choice(rng, model.diagnoses)
    lesion = None if dx == "normal appearance" else _lesion(rng, model, dx)
    doppler = lesion is not None and rng.random() < 0.45
    f_lo, f_hi = model.f0_mhz or PROBES[model.probe]["f0"]
    return CaseSpec(
        case_id=str(case_id), organ_model=key, organ=model.organ,
        system=taxonomy.system_of(model.organ), probe=model.probe,
        f0_mhz=round(float(rng.uniform(f_lo, f_hi)), 1),
        depth_mm=round(float(rng.uniform(*model.depth_mm)), 0), diagnosis=dx, lesion=lesion,
        doppler=bool(doppler), labels=_labels(rng, model, lesion, doppler),
        seed=int(rng.integers(0, 2**31 - 1)), layout=int(rng.integers(0, 4)))
