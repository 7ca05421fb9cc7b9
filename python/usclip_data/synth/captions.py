"""Report-style captions from taxonomy labels, and reading a caption back into labels.

``caption(labels, rng)`` writes what a sonographer's report line could say about an image:
one of several report styles (narrative, findings/impression, terse list, subject-first),
synonyms for every value (``caption_lexicon``), the organ named in several ways, some
attributes left unsaid, and multi-tag dimensions joined ("oval to lobulated"). The caption
is random given the labels, never a fixed function of them, so a text tower cannot learn a
lookup table; but every value it states is one the labels hold, and it never states a value
they lack (``mentions`` reads it back; the tests check both).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from usclip_sdk import taxonomy as tx
from . import caption_lexicon as lex

__all__ = ["caption", "mentions", "DROP_PROBABILITY"]

# Chance that a stated-able descriptor is left out of a caption (reports omit things).
DROP_PROBABILITY = 0.25
_LESION_FIELDS = ("Shape", "Margins", "Echogenicity", "InternalCharacteristics",
                  "PosteriorAcoustics", "Vascularity")


def _canonical(labels: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels: expected a mapping field -> values, found {type(labels).__name__}")
    unknown = [k for k in labels if k not in tx.FIELDS]
    if unknown:
        raise ValueError(f"labels: unknown fields {unknown}; expected some of {list(tx.FIELDS)}")
    return tx.parse_record({k: list(v) if isinstance(v, tuple) else v for k, v in labels.items()})


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _join(rng: np.random.Generator, words: Sequence[str], ranged: bool = False) -> str:
    """Join several tags: "a and b", "a, b and c", or "a to b" for two graded descriptors."""
    words = list(words)
    if len(words) == 1:
        return words[0]
    if ranged and len(words) == 2 and rng.random() < 0.5:
        return f"{words[0]} to {words[1]}"
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeio" or phrase.startswith(("ill", "un")) else "a"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Say:
    """The surface forms chosen for one caption: each mentioned field once, or None."""

    def __init__(self, lab: dict[str, tuple[str, ...]], rng: np.random.Generator):
        self.rng = rng
        self.lab = lab
        self.normal = "normal appearance" in lab["Diagnosis"]
        self.dx = [v for v in lab["Diagnosis"] if v != "normal appearance"]
        keep = {f: bool(lab[f]) and rng.random() >= DROP_PROBABILITY for f in _LESION_FIELDS}
        self.keep = keep
        organs = lab["Organ_level"]
        # The organ is nearly always named (a report says where it looked).
        self.organ = (_join(rng, [_pick(rng, lex.ORGAN_NAMES[o]) for o in organs])
                      if organs and rng.random() < 0.95 else None)
        systems = lab["Body_system_level"]
        self.system = (_join(rng, [_pick(rng, lex.SYSTEM_NAMES[s]) for s in systems])
                       if systems and (rng.random() < 0.4 or self.organ is None) else None)

    def adjectives(self, field: str) -> tuple[list[str], list[str]]:
        """(before-noun, after-noun) forms for one adjective field, empty when unsaid."""
        if not self.keep.get(field):
            return [], []
        forms = [_pick(self.rng, lex.ADJECTIVES[field][v]) for v in self.lab[field]]
        pre = [f for f in forms if not f.startswith(("of ", "with "))]
        post = [f for f in forms if f.startswith(("of ", "with "))]
        ranged = field in ("Shape", "Echogenicity")
        return ([_join(self.rng, pre, ranged)] if pre else []), ([_join(self.rng, post)] if post else [])

    def finding(self, field: str) -> str | None:
        if not self.keep.get(field):
            return None
        return _join(self.rng, [_pick(self.rng, lex.FINDING_NOUNS[field][v]) for v in self.lab[field]])

    def noun(self) -> str:
        if self.dx:
            return _join(self.rng, [_pick(self.rng, lex.DIAGNOSIS_NOUNS[d]) for d in self.dx])
        return _pick(self.rng, ("lesion", "focal lesion", "focal abnormality", "area"))

    def noun_phrase(self) -> str:
        """"a well-defined oval hypoechoic nodule of ... with calcifications"."""
        pre: list[str] = []
        post: list[str] = []
        for field in ("Margins", "Shape", "Echogenicity"):
            a, b = self.adjectives(field)
            pre += a
            post += b
        head = " ".join(pre + [self.noun()])
        if self.normal and not self.dx:
            head = " ".join(pre + [_pick(self.rng, ("area", "region"))])
        internal = self.finding("InternalCharacteristics")
        if internal:
            post.append(_pick(self.rng, ("with ", "containing ", "demonstrating ")) + internal)
        return f"{_article(head)} {head}" + "".join(
            (", " if i else " ") + p for i, p in enumerate(post))

    def where(self) -> str:
        if self.organ is None:
            return ""
        return f" {_pick(self.rng, ('in', 'within', 'arising from', 'involving'))} the {self.organ}"

    def tail_sentences(self) -> list[str]:
        out = []
        post = self.finding("PosteriorAcoustics")
        if post:
            out.append(_pick(self.rng, (f"There is {post}.", f"{_cap(post)} is noted.",
                                        f"{_cap(post)} is present.")))
        vasc = self.finding("Vascularity")
        if vasc:
            out.append(_pick(self.rng, (f"Colour Doppler shows {vasc}.",
                                        f"Doppler interrogation demonstrates {vasc}.",
                                        f"{_cap(vasc)} on power Doppler.")))
        return out

    def header(self) -> list[str]:
        return [_cap(self.system) + "."] if self.system else []


def _narrative(s: _Say) -> str:
    lead = _pick(s.rng, ("There is", "Ultrasound demonstrates", "Sonography shows", "Noted is"))
    return " ".join(s.header() + [f"{lead} {s.noun_phrase()}{s.where()}."] + s.tail_sentences())


def _findings_impression(s: _Say) -> str:
    where = f"the {s.organ}" if s.organ else "the scanned region"
    body = f"FINDINGS: {_cap(where)} contains {s.noun_phrase()}."
    tail = s.tail_sentences()
    impression = s.noun() if s.dx else _pick(s.rng, ("focal lesion", "focal abnormality"))
    loc = f" of the {s.organ}" if s.organ and s.rng.random() < 0.6 else ""
    return " ".join(s.header() + [body] + tail + [f"IMPRESSION: {_cap(impression)}{loc}."])


def _terse(s: _Say) -> str:
    items = [s.noun()]
    for field in ("Echogenicity", "Shape", "Margins"):
        a, b = s.adjectives(field)
        items += a + [p.split(" ", 1)[1] if p.startswith("of ") else p for p in b]
    items += [x for x in (s.finding(f) for f in _LESION_FIELDS[3:]) if x]
    where = _cap(s.organ) if s.organ else (_cap(s.system) if s.system else "Findings")
    return f"{where}: " + "; ".join(items) + "."


def _subject_first(s: _Say) -> str:
    noun = s.noun()
    many = len(s.dx) > 1
    first = f"{_cap(_article(noun))} {noun} {'are' if many else 'is'} seen{s.where()}."
    desc: list[str] = []
    for field in ("Echogenicity", "Shape", "Margins"):
        a, b = s.adjectives(field)
        desc += a + b
    sentences = [first]
    if desc:
        sentences.append(f"{'They are' if many else 'It is'} {_join(s.rng, desc)}.")
    internal = s.finding("InternalCharacteristics")
    if internal:
        sentences.append(f"{'They contain' if many else 'It contains'} {internal}.")
    return " ".join(s.header() + sentences + s.tail_sentences())


def _normal(s: _Say) -> str:
    organ = s.organ
    lines = s.header() + [_pick(s.rng, (
        f"The {organ} is unremarkable.",
        f"Normal sonographic appearance of the {organ}.",
        f"The {organ} is within normal limits, with no focal lesion.",
        f"FINDINGS: {_cap(organ)} of normal appearance. No focal abnormality.",
        f"{_cap(organ)}: normal appearance.") if organ else (
        "The study is unremarkable.", "Normal sonographic appearance.",
        "No focal lesion in the scanned region."))]
    # Descriptors sometimes accompany a normal study (e.g. the parenchyma's echogenicity).
    desc = []
    for field in ("Echogenicity", "Shape", "Margins"):
        a, b = s.adjectives(field)
        desc += a + b
    if desc:
        lines.append(f"The tissue appears {_join(s.rng, desc)}.")
    internal = s.finding("InternalCharacteristics")
    if internal:
        lines.append(f"There are {internal}.")
    return " ".join(lines + s.tail_sentences())


def _minimal(s: _Say) -> str:
    where = f" of the {s.organ}" if s.organ else ""
    return " ".join(s.header() + [_pick(s.rng, (f"Ultrasound image{where}.",
                                                 f"B-mode sonogram{where}."))])


_LESION_STYLES = (_narrative, _findings_impression, _terse, _subject_first)


def caption(labels: Mapping[str, object], rng: np.random.Generator) -> str:
    """A radiology-report style caption for ``labels`` (field -> canonical values).

    ``rng`` (numpy Generator) drives every choice: style, synonyms, which attributes are
    left unsaid, how multi-tag fields are joined. Same labels and same generator state give
    the same caption; different states give different captions.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected numpy.random.Generator, found {type(rng).__name__}")
    s = _Say(_canonical(labels), rng)
    if s.dx:
        return _LESION_STYLES[int(rng.integers(len(_LESION_STYLES)))](s)
    if s.normal:
        return _normal(s)
    if any(s.lab[f] for f in _LESION_FIELDS):
        return _narrative(s)  # descriptors without a diagnosis: "a hypoechoic lesion"
    return _minimal(s)


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    table = {p: (f, v) for p, f, v in lex.all_phrases()}  # longest first
    alternation = "|".join(re.escape(p) for p in table)
    return re.compile(r"(?<![\w-])(?:" + alternation + r")(?![\w-])"), table


def mentions(text: str) -> dict[str, tuple[str, ...]]:
    """The taxonomy values a caption states, per field.

    Reads left to right, taking the longest lexicon phrase at each position ("mixed cystic
    and solid components" is one internal characteristic, not "solid components"). Reads
    only the phrases of ``caption_lexicon``: a free-text report may say things this misses,
    but everything ``caption`` writes is read back.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, found {type(text).__name__}")
    pattern, table = _pattern()
    found: dict[str, list[str]] = {f: [] for f in tx.FIELDS}
    for m in pattern.finditer(text.lower()):
        field, value = table[m.group(0)]
        if value not in found[field]:
            found[field].append(value)
    return {f: tuple(v) for f, v in found.items()}
