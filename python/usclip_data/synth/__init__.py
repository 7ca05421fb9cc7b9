"""Synthetic B-mode ultrasound data engine.

``sample_case(rng, case_id)`` draws a plausible case (organ, probe, lesion attributes and the
report labels); ``render_view(case, view, seed, size=None)`` renders one scanner frame of it
through a physical image-formation chain (scatterers, PSF, attenuation/TGC, Hilbert envelope,
log compression, scan conversion) with burned-in overlays; ``caption(labels, rng)`` writes a
report-style caption. See docs/data.md.
"""
from .captions import caption
from .case import ORGAN_MODELS, CaseSpec, LesionSpec, sample_case
from .render import SynthFrame, render_view

__all__ = ["sample_case", "render_view", "CaseSpec", "LesionSpec", "SynthFrame", "caption", "ORGAN_MODELS"]
