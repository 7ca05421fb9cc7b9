"""Bad training samples: a typed error naming file and line, or a documented, counted skip.

A corrupt sample must never become a silent wrong label. Every fault the US-365K reader can
attribute to one sample goes through ``BadSamples.report``: with policy "error" (the default)
it raises ``BadSampleError`` (a ValueError; ``MissingImageError`` is also a FileNotFoundError)
naming the file, the line and what is wrong; with "skip" the sample is left out and counted by
kind, and ``summary()`` is what the trainer reports at the end of the run.

Kinds (``KINDS``): "non-utf8" (a split line that is not UTF-8), "bad-json" (a split line that is
not a JSON object), "bad-record" (a split line without an image name or caption string),
"missing-image" (a listed image not found), "label-outside-taxonomy" (a full_data.json record
whose values are not in the taxonomy: its samples are skipped, never trained untagged),
"undecodable-image" (an image the runtime's decoder refuses; checked up front when skipping).
Faults that cannot be tied to one sample (full_data.json not UTF-8 or not JSON, a record with
no media_name) are always errors: skipping them would leave some image silently untagged.
"""
from __future__ import annotations

from collections import Counter

__all__ = ["KINDS", "POLICIES", "BadSampleError", "MissingImageError", "BadSamples"]

KINDS = ("non-utf8", "bad-json", "bad-record", "missing-image", "label-outside-taxonomy",
         "undecodable-image")
POLICIES = ("error", "skip")
_EXAMPLES = 5  # per kind, in the summary


class BadSampleError(ValueError):
    """One bad sample: ``kind`` (one of KINDS), ``where`` ("file:line"), message says what."""

    def __init__(self, kind: str, where: str, message: str) -> None:
        super().__init__(f"{where}: {message} [{kind}; --on-bad-sample skip leaves such samples out, counted]")
        self.kind, self.where = kind, where


class MissingImageError(BadSampleError, FileNotFoundError):
    """A listed image that is not in the data set (also a FileNotFoundError)."""


class BadSamples:
    """The policy for bad samples and, when skipping, the count of what was left out."""

    def __init__(self, policy: str = "error") -> None:
        if policy not in POLICIES:
            raise ValueError(f"on_bad_sample: expected one of {list(POLICIES)}, found {policy!r}")
        self.policy = policy
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    @property
    def skipping(self) -> bool:
        return self.policy == "skip"

    def report(self, kind: str, where: str, message: str) -> None:
        """Raise (policy "error") or count the sample as skipped (policy "skip")."""
        assert kind in KINDS, kind
        if not self.skipping:
            cls = MissingImageError if kind == "missing-image" else BadSampleError
            raise cls(kind, where, message)
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < _EXAMPLES:
            shown.append(f"{where}: {message}")

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict:
        """{"policy", "skipped", "by_kind" {kind: n}, "examples" {kind: [first five]}}."""
        return {"policy": self.policy, "skipped": self.skipped, "by_kind": dict(self.counts),
                "examples": {k: list(v) for k, v in self.examples.items()}}

    def describe(self) -> str:
        """One line for a log: "skipped 3 bad samples (missing-image 2, non-utf8 1)"."""
        if not self.skipped:
            return "no bad samples skipped"
        parts = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items()))
        return f"skipped {self.skipped} bad samples ({parts})"
