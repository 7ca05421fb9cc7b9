"""Class embeddings through the attribute graph (export of a model trained with it): each class's
prompts fused with the graph of its own label; with the graph's residual at zero they are the
label-free anchors exactly, and a strong graph moves them (what the conv edge run needed)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from _export_helpers import TINY_CONTEXT, TINY_IMAGE, tiny_text_dir  # noqa: E402

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.export.bundle_writer import bundle_class_embeddings, graph_class_embeddings  # noqa: E402
from usclip_train.factory import text_head_of  # noqa: E402
from usclip_train.graph import AttributeGraphFusion  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny export model with the TextHead training adds when it uses the graph."""
    from usclip_train.factory import TextTokenizer, build_model, resolve_spec

    overrides = {"embed_dim": 16, "text_head": "graph_norm",
                 "vision_cfg": {"image_size": TINY_IMAGE, "layers": 2, "width": 32, "head_width": 16,
                                "patch_size": 16},
                 "text_cfg": {"context_length": TINY_CONTEXT}}
    spec = resolve_spec("usclip-edge", text_model=tiny_text_dir(tmp_path_factory.mktemp("g")), overrides=overrides)
    torch.manual_seed(0)
    model = build_model(spec, pretrained_text=False).eval()
    assert text_head_of(model) is not None
    return model, TextTokenizer(spec.tokenizer_path, spec.context_length)


def test_zero_residual_gives_the_label_free_anchors(tiny):
    model, tok = tiny
    torch.manual_seed(0)
    fusion = AttributeGraphFusion(16, heads=2, scale="unit_norm")
    with torch.no_grad():
        fusion.fusion.alpha.zero_()
    g = graph_class_embeddings(model, tok, fusion)
    plain = bundle_class_embeddings(model, tok)
    assert g.shape == plain.shape == (len(taxonomy.class_names()), 16)
    np.testing.assert_allclose(g, plain, atol=2e-5)


def test_a_strong_graph_moves_each_anchor_towards_its_own_label(tiny):
    model, tok = tiny
    torch.manual_seed(0)
    fusion = AttributeGraphFusion(16, heads=2, scale="unit_norm")
    with torch.no_grad():
        fusion.fusion.alpha.fill_(fusion.fusion.alpha_max)
        fusion.fusion.gate.weight.mul_(50.0)
    g = graph_class_embeddings(model, tok, fusion)
    plain = bundle_class_embeddings(model, tok)
    assert np.allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-5)
    cos = np.sum(g * plain, axis=1)
    assert cos.min() < 0.95  # the graph changed the anchors
    assert len({tuple(np.round(r, 4)) for r in g}) == len(g)  # and kept the classes apart


def test_a_model_without_a_text_head_is_refused(tiny, monkeypatch):
    import usclip_train.factory as factory

    model, tok = tiny
    monkeypatch.setattr(factory, "text_head_of", lambda m: None)
    with pytest.raises(ValueError, match="TextHead"):
        graph_class_embeddings(model, tok, AttributeGraphFusion(16, heads=2))
