"""The Ultrasonographic Diagnostic Taxonomy (UDT): the one source of truth for labels.

UHAT (anatomy): 9 body systems -> 52 organs, a two-level tree.
UDAF (diagnostic attributes): nine dimensions, each with its exact published field name and
values (Ultrasound-CLIP, US-365K ``full_data.json``).

Everything that names a label - the synthetic data engine, the loss, the evaluation, the
exported class embeddings and the SDK's structured ``Prediction`` - reads it from here, so a
class index means the same thing in every room of the house.

The flat class list is the concatenation of every dimension's values in dimension order
(93 classes); ``group_sizes()`` gives the consecutive groups that ``ops.similarity(groups=...)``
softmaxes within.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

__all__ = [
    "TAXONOMY_VERSION",
    "BODY_SYSTEMS",
    "Dimension",
    "DIMENSIONS",
    "FIELDS",
    "dimension",
    "organs",
    "system_of",
    "class_names",
    "class_index",
    "group_sizes",
    "group_offsets",
    "descriptor_vocabulary",
    "parse_record",
    "prompts",
    "prompt_templates",
    "PROMPT_SETS",
    "NORMAL",
    "UnknownLabelError",
]

TAXONOMY_VERSION = "udt-1.0"

# UHAT. Our reading of the release's body-system order (see shared reference): the release
# lists the 52 organs grouped by system in this order; the split points are ours.
BODY_SYSTEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Abdomen and retroperitoneum", (
        "Liver", "Gallbladder and bile ducts", "Pancreas", "Spleen", "Appendix",
        "Gastrointestinal tract", "Peritoneum mesentery and omentum",
        "Retroperitoneum and great vessels", "Adrenal glands", "Abdominal wall")),
    ("Urinary Tract and male reproductive system", (
        "Kidney and ureter", "Bladder", "Scrotum", "Penis and perineum")),
    ("Gynaecology", ("Uterus", "Adnexa", "Vagina")),
    ("Head and Neck", (
        "Thyroid gland", "Parathyroid glands", "Salivary glands", "Lymph nodes", "Ocular",
        "Ear", "Larynx")),
    ("Breast and Axilla", ("Breast", "Axilla")),
    ("Musculoskeletal Joints and Tendons", (
        "Shoulder", "Elbow", "Wrist and carpus", "Fingers", "Hip groin and buttock", "Knee",
        "Ankle", "Foot", "Peripheral nerves", "Soft tissues", "Skull")),
    ("Thorax", ("Pulmonary", "Pleural space", "Heart and mediastinum", "Thoracic wall")),
    ("Pediatrics", (
        "Pediatric abdomen and retroperitoneum", "Pediatric urinary tract", "Pediatric scrotum",
        "Pediatric gynaecological pathology and infant breast", "Pediatric head and neck",
        "Neonatal brain and spine", "Infant hip and knee", "Pediatric thorax")),
    ("Peripheral vessels", ("Peripheral arteries", "Peripheral veins", "Dialysis fistula")),
)


class UnknownLabelError(ValueError):
    """A label string that the taxonomy does not know (names the field and the value)."""


@dataclass(frozen=True)
class Dimension:
    """One UDAF dimension.

    field: the exact US-365K field name.
    values: the exact published values, in canonical order (class index order).
    phrases: natural-language forms used inside prompts, one per value.
    templates: prompt phrasings; ``{}`` receives a phrase. Training may use these as captions
        (``template_captions``).
    ordinal: True when neighbouring values are ordered (used by the soft-label similarity).
    held_out_templates: phrasings that training never uses as captions (not the templates, not
        the report-caption engine's sentence frames), for zero-shot evaluation that is not
        prompt classification; the exported bundles' class embeddings are built from them.
    """

    field: str
    title: str
    values: tuple[str, ...]
    phrases: tuple[str, ...]
    templates: tuple[str, ...]
    ordinal: bool = False
    held_out_templates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.values) != len(self.phrases):
            raise ValueError(f"{self.field}: {len(self.values)} values but {len(self.phrases)} phrases")
        if set(self.templates) & set(self.held_out_templates):
            raise ValueError(f"{self.field}: a held-out template is also a training template")

    def __len__(self) -> int:
        return len(self.values)

    def index(self, value: str) -> int:
        """Index of ``value``; matching ignores case and surrounding whitespace."""
        key = _norm(value)
        for i, v in enumerate(self.values):
            if _norm(v) == key:
                return i
        raise UnknownLabelError(
            f"{self.field}: unknown value {value!r}; expected one of {list(self.values)}")


def _norm(s: str) -> str:
    return " ".join(str(s).strip().lower().split())


_ORGANS = tuple(o for _, group in BODY_SYSTEMS for o in group)
_SYSTEMS = tuple(s for s, _ in BODY_SYSTEMS)

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(
        "Diagnosis", "diagnosis",
        ("nodule", "cyst", "mass", "fluid collection", "normal appearance"),
        ("a nodule", "a cyst", "a mass", "a fluid collection", "normal appearance without a focal lesion"),
        ("an ultrasound image showing {}.", "ultrasound findings: {}.",
         "a sonogram demonstrating {}.", "b-mode ultrasound with {}."),
        held_out_templates=("the scan reveals {}.", "sonographic impression: {}.",
                            "this examination is notable for {}.", "imaging features of {}."),
    ),
    Dimension(
        "Body_system_level", "body system", _SYSTEMS,
        ("the abdomen and retroperitoneum", "the urinary tract and male reproductive system",
         "gynaecology", "the head and neck", "the breast and axilla",
         "musculoskeletal joints and tendons", "the thorax", "a paediatric patient",
         "the peripheral vessels"),
        ("an ultrasound image of {}.", "a sonogram of {}.", "ultrasound examination of {}.",
         "an ultrasound scan of {}."),
        held_out_templates=("a study covering {}.", "the transducer is placed over {}.",
                            "sonographic survey of {}.", "imaging performed on {}."),
    ),
    Dimension(
        "Organ_level", "organ", _ORGANS,
        tuple(o.lower() for o in _ORGANS),
        ("an ultrasound image of the {}.", "a sonogram of the {}.",
         "ultrasound of the {}.", "a b-mode image of the {}."),
        held_out_templates=("the probe is over the {}.", "a scan through the {}.",
                            "sonographic view centred on the {}.", "imaging of the {} region."),
    ),
    Dimension(
        "Shape", "shape",
        ("round", "oval", "lobulated", "tubular/linear", "nodular", "flattened", "irregular"),
        ("round", "oval", "lobulated", "tubular", "nodular", "flattened", "irregular"),
        ("an ultrasound image of a {} lesion.", "a lesion with a {} shape on ultrasound.",
         "a {} shaped lesion.", "sonogram showing a {} structure."),
        held_out_templates=("the finding has a {} outline.", "its contour is {}.",
                            "a focal abnormality of {} form.", "geometry of the lesion: {}."),
    ),
    Dimension(
        "Margins", "margins",
        ("well-defined", "ill-defined/indistinct"),
        ("well-defined", "ill-defined"),
        ("a lesion with {} margins.", "an ultrasound image of a {} lesion.",
         "the margins are {}.", "a {} lesion on ultrasound."),
        held_out_templates=("its borders appear {}.", "the edge of the finding is {}.",
                            "a focal abnormality whose boundary is {}.", "margin assessment: {}."),
    ),
    Dimension(
        "Echogenicity", "echogenicity",
        ("anechoic", "hypoechoic", "isoechoic", "hyperechoic", "mixed echogenicity"),
        ("anechoic", "hypoechoic", "isoechoic", "hyperechoic", "mixed echogenicity"),
        ("an ultrasound image of an {} lesion.", "a lesion that is {} on ultrasound.",
         "the lesion appears {}.", "a sonogram showing an {} area."),
        ordinal=True,
        held_out_templates=("relative to the surrounding tissue the finding is {}.",
                            "echo pattern of the abnormality: {}.", "a focus that looks {}.",
                            "internal echo level: {}."),
    ),
    Dimension(
        "InternalCharacteristics", "internal characteristics",
        ("cystic components", "calcifications", "septations", "solid components",
         "mixed cystic and solid mass", "complex cystic solid"),
        ("cystic components", "calcifications", "septations", "solid components",
         "mixed cystic and solid components", "complex cystic and solid content"),
        ("an ultrasound image of a lesion with {}.", "a lesion containing {}.",
         "ultrasound shows {}.", "a sonogram demonstrating {}."),
        held_out_templates=("inside the finding there are {}.", "its content includes {}.",
                            "internal architecture: {}.", "the abnormality is made up of {}."),
    ),
    Dimension(
        "PosteriorAcoustics", "posterior acoustics",
        ("enhancement", "shadowing"),
        ("posterior acoustic enhancement", "posterior acoustic shadowing"),
        ("an ultrasound image with {}.", "a lesion with {}.", "ultrasound shows {}.",
         "a sonogram demonstrating {}."),
        held_out_templates=("deep to the finding there is {}.", "beyond the abnormality: {}.",
                            "behind the focus the scan shows {}.", "far-field effect: {}."),
    ),
    Dimension(
        "Vascularity", "vascularity",
        ("reduced/diminished", "normal/regular", "no", "increased",
         "indeterminate/inhomogeneous vascularity"),
        ("reduced vascularity", "normal vascularity", "no vascularity", "increased vascularity",
         "inhomogeneous vascularity"),
        ("a doppler ultrasound image showing {}.", "a lesion with {}.", "colour doppler shows {}.",
         "an ultrasound image with {}."),
        held_out_templates=("flow assessment reveals {}.", "the colour box demonstrates {}.",
                            "perfusion of the finding: {}.", "doppler interrogation finds {}."),
    ),
)

FIELDS: tuple[str, ...] = tuple(d.field for d in DIMENSIONS)
NORMAL = "normal appearance"  # the Diagnosis value of a frame without a focal lesion
_BY_FIELD: dict[str, Dimension] = {d.field: d for d in DIMENSIONS}
_SYSTEM_OF: dict[str, str] = {o: s for s, group in BODY_SYSTEMS for o in group}


def dimension(field: str) -> Dimension:
    """The dimension with this field name (e.g. ``"Echogenicity"``)."""
    try:
        return _BY_FIELD[field]
    except KeyError:
        raise UnknownLabelError(f"unknown dimension {field!r}; expected one of {list(FIELDS)}") from None


def organs(system: str | None = None) -> tuple[str, ...]:
    """All 52 organs, or those of one body system."""
    if system is None:
        return _ORGANS
    for s, group in BODY_SYSTEMS:
        if s == system:
            return group
    raise UnknownLabelError(f"unknown body system {system!r}; expected one of {list(_SYSTEMS)}")


def system_of(organ: str) -> str:
    """The body system an organ belongs to."""
    organ = dimension("Organ_level").values[dimension("Organ_level").index(organ)]
    return _SYSTEM_OF[organ]


def class_names() -> tuple[tuple[str, str], ...]:
    """The flat class list: (field, value) for every value of every dimension, in order."""
    return tuple((d.field, v) for d in DIMENSIONS for v in d.values)


def group_sizes() -> tuple[int, ...]:
    """Number of classes per dimension, in order (sums to ``len(class_names())``)."""
    return tuple(len(d) for d in DIMENSIONS)


def group_offsets() -> tuple[int, ...]:
    """Flat index of each dimension's first class."""
    out, acc = [], 0
    for n in group_sizes():
        out.append(acc)
        acc += n
    return tuple(out)


def class_index(field: str, value: str) -> int:
    """Flat class index of ``value`` in dimension ``field``."""
    return group_offsets()[FIELDS.index(dimension(field).field)] + dimension(field).index(value)


def descriptor_vocabulary() -> tuple[tuple[str, str], ...]:
    """Descriptor nodes of the attribute graph: the values of dimensions 2-9 (88 entries)."""
    return tuple((d.field, v) for d in DIMENSIONS[1:] for v in d.values)


def parse_record(record: Mapping[str, object], strict: bool = True) -> dict[str, tuple[str, ...]]:
    """Canonical tags per field from a ``full_data.json`` record.

    Each field may be missing, None, a string or a list of strings; the result maps every
    field to a tuple of canonical values (empty when the record has no tag there).
    With ``strict`` an unknown value raises UnknownLabelError; otherwise it is dropped.
    """
    out: dict[str, tuple[str, ...]] = {}
    for d in DIMENSIONS:
        raw = record.get(d.field)
        items: Iterable[object]
        if raw is None or raw == "":
            items = ()
        elif isinstance(raw, str):
            items = (raw,)
        elif isinstance(raw, (list, tuple)):
            items = raw
        else:
            raise UnknownLabelError(f"{d.field}: expected a string or a list, found {type(raw).__name__}")
        tags: list[str] = []
        for item in items:
            if item is None or item == "":
                continue
            try:
                v = d.values[d.index(str(item))]
            except UnknownLabelError:
                if strict:
                    raise
                continue
            if v not in tags:
                tags.append(v)
        out[d.field] = tuple(tags)
    return out


PROMPT_SETS = ("train", "held_out")


def prompt_templates(field: str, prompt_set: str = "train") -> tuple[str, ...]:
    """A dimension's templates: "train" (may be training captions) or "held_out" (never are)."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"prompt_set: expected one of {PROMPT_SETS}, found {prompt_set!r}")
    d = dimension(field)
    return d.templates if prompt_set == "train" else d.held_out_templates


def prompts(field: str, value: str, templates: Sequence[str] | None = None,
            prompt_set: str = "train") -> list[str]:
    """The prompt ensemble for one taxonomy value: ``templates`` of the caller's, else the
    dimension's ``prompt_set`` ("train" or "held_out", see ``Dimension``)."""
    d = dimension(field)
    phrase = d.phrases[d.index(value)]
    return [t.format(phrase) for t in (templates or prompt_templates(field, prompt_set))]
