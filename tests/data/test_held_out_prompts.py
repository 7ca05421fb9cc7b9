"""Held-out prompts (taxonomy.Dimension.held_out_templates) are never training captions: not a
training template, and no sentence frame of theirs occurs in a report caption of the engine."""
import numpy as np

from usclip_data.synth import caption, sample_case
from usclip_sdk import taxonomy


def _frames(templates):
    # The fixed wording of a template around its {} slot, e.g. "its borders appear".
    return {part.strip(" .:").lower() for t in templates for part in t.split("{}") if len(part.strip(" .:")) > 6}


def test_every_dimension_has_four_held_out_templates_disjoint_from_training_ones():
    for d in taxonomy.DIMENSIONS:
        assert len(d.held_out_templates) == 4 and all(t.count("{}") == 1 for t in d.held_out_templates)
        assert not _frames(d.held_out_templates) & _frames(d.templates), d.field


def test_no_report_caption_uses_a_held_out_sentence_frame():
    frames = set().union(*(_frames(d.held_out_templates) for d in taxonomy.DIMENSIONS))
    rng = np.random.default_rng(0)
    for i in range(400):
        case = sample_case(rng, f"c{i}")
        text = caption(case.labels, rng).lower()
        hits = [f for f in frames if f in text]
        assert not hits, (hits, text)


def test_prompt_sets():
    assert taxonomy.prompts("Margins", "well-defined", prompt_set="held_out")[0] == "its borders appear well-defined."
    assert taxonomy.prompts("Margins", "well-defined")[0] == "a lesion with well-defined margins."
