"""Attribute graph and fusion: shapes, the batched graph against a per-sample edge-list loop,
gradients to every parameter, the alpha clamp, the label-free path."""
import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.graph import (  # noqa: E402
    N_DESCRIPTOR_NODES, N_DIAGNOSIS_NODES, AttributeGraph, AttributeGraphFusion, GraphFusion,
    bipartite_adjacency, node_masks)

N = len(taxonomy.class_names())


def labels_batch(b=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(b, N, generator=g) < 0.07).float()
    y[0] = 0                      # no tag at all: unknown diagnosis + unknown descriptor
    y[1, :5] = 0                  # no diagnosis tag
    y[1, 20] = 1
    y[2, 5:] = 0                  # diagnosis only
    y[2, 1] = 1
    y[3, :5] = 1                  # every diagnosis
    return y


def per_sample_reference(model: AttributeGraph, y: torch.Tensor) -> torch.Tensor:
    """One graph at a time from explicit node and edge lists, messages summed edge by edge."""
    outs = []
    for row in y:
        dx = [i for i in range(5) if row[i] > 0] or [5]
        ds = [j for j in range(88) if row[5 + j] > 0] or [88]
        edges = [(i, j) for i in range(len(dx)) for j in range(len(ds))]
        out_deg = [sum(1 for e in edges if e[0] == i) for i in range(len(dx))]
        in_deg = [sum(1 for e in edges if e[1] == j) for j in range(len(ds))]
        h_dx = model.dx_norm(model.dx_embed.weight[dx])
        h_ds = model.ds_norm(model.ds_embed.weight[ds])
        for conv in model.convs:
            m_ds = torch.zeros_like(h_ds)
            m_dx = torch.zeros_like(h_dx)
            for i, j in edges:
                w = 1.0 / math.sqrt(out_deg[i] * in_deg[j])
                m_ds[j] = m_ds[j] + w * h_dx[i]
                m_dx[i] = m_dx[i] + w * h_ds[j]
            h_dx, h_ds = F.relu(conv.rev(m_dx)), F.relu(conv.fwd(m_ds))
        pooled = h_dx.mean(0) + h_ds.mean(0)
        outs.append(F.normalize(model.proj(pooled), dim=-1))
    return torch.stack(outs)


def test_node_masks_unknown_nodes():
    y = labels_batch()
    dx, ds = node_masks(y)
    assert dx.shape == (7, N_DIAGNOSIS_NODES) and ds.shape == (7, N_DESCRIPTOR_NODES)
    assert dx[0, 5] == 1 and ds[0, 88] == 1 and dx[0].sum() == 1 and ds[0].sum() == 1
    assert dx[1, 5] == 1 and ds[1, 88] == 0
    assert dx[2, 5] == 0 and ds[2, 88] == 1
    assert dx[3, :5].sum() == 5 and dx[3, 5] == 0


def test_adjacency_hand_values():
    y = torch.zeros(1, N)
    y[0, [0, 2]] = 1                        # two diagnoses
    y[0, [5, 30, 92]] = 1                   # three descriptors
    a = bipartite_adjacency(*node_masks(y))[0]
    expected = 1 / math.sqrt(3 * 2)         # out-degree 3, in-degree 2
    assert a[0, 0] == pytest.approx(expected) and a[2, 87] == pytest.approx(expected)
    assert a.sum() == pytest.approx(6 * expected)
    assert a[1].sum() == 0 and a[:, 88].sum() == 0


def test_batched_equals_per_sample_loop():
    torch.manual_seed(0)
    model = AttributeGraph(out_dim=32, hidden=16).eval()
    y = labels_batch()
    with torch.no_grad():
        assert torch.allclose(model(y), per_sample_reference(model, y), atol=1e-5)


def test_shapes_and_norm():
    model = AttributeGraph(out_dim=64)
    out = model(labels_batch())
    assert out.shape == (7, 64)
    assert torch.allclose(out.norm(dim=1), torch.ones(7), atol=1e-5)
    assert model.dx_embed.weight.shape == (6, 128) and len(model.convs) == 2


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    m = AttributeGraphFusion(64)
    t = torch.randn(7, 64, requires_grad=True)
    target = F.normalize(torch.randn(7, 64), dim=1)
    loss = (m(t, labels_batch()) * target).sum()
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert t.grad.abs().sum() > 0


def test_alpha_clamp_bounds_the_residual():
    torch.manual_seed(2)
    fusion = GraphFusion(64)
    assert fusion.alpha.item() == pytest.approx(0.05)
    t, g = torch.randn(5, 64), F.normalize(torch.randn(5, 64), dim=1)
    with torch.no_grad():
        fusion.alpha.fill_(0.2)
        at_max = fusion(t, g)
        fusion.alpha.fill_(0.9)
        assert torch.allclose(fusion(t, g), at_max)
        fusion.alpha.fill_(-0.3)
        assert torch.allclose(fusion(t, g), fusion(t, None), atol=1e-6)
    fusion.alpha.data.fill_(0.9)
    fusion(t, g).sum().backward()
    assert fusion.alpha.grad.item() == 0.0   # outside the range: clamp blocks the gradient


def test_fusion_label_free_path_and_scale_invariance():
    torch.manual_seed(3)
    fusion = GraphFusion(64)
    with torch.no_grad():
        fusion.norm.weight.uniform_(0.5, 1.5)
        fusion.norm.bias.uniform_(-0.1, 0.1)
    t, g = torch.randn(4, 64), F.normalize(torch.randn(4, 64), dim=1)
    out = fusion(t, g)
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-5)
    # Without a graph: normalise(LayerNorm(t)), what the exported text tower computes.
    ln = F.layer_norm(t, (64,), fusion.norm.weight, fusion.norm.bias, fusion.norm.eps)
    assert torch.allclose(fusion(t, None), F.normalize(ln, dim=1), atol=1e-5)
    # The text tower's output scale does not change how much the graph moves it.
    assert torch.allclose(fusion(10 * t, g), out, atol=1e-5)
    assert not torch.allclose(out, fusion(t, None), atol=1e-4)


def test_fusion_multi_token_and_errors():
    fusion = GraphFusion(64)
    t, g = torch.randn(3, 64), torch.randn(3, 4, 64)
    pad = torch.tensor([[False, False, True, True]] * 3)
    assert fusion(t, g, key_padding_mask=pad).shape == (3, 64)
    with pytest.raises(ValueError, match="dim"):
        GraphFusion(60)
    with pytest.raises(ValueError, match="g"):
        fusion(t, torch.randn(2, 64))
    with pytest.raises(ValueError, match="labels"):
        AttributeGraph(8)(torch.zeros(2, 92))


@pytest.mark.parametrize("scale,lo,hi", [("unit_norm", -1.0, 0.6), ("unit_rms", 0.97, 1.0)])
def test_fusion_strength_matches_the_release_by_default(scale, lo, hi):
    # The release adds alpha * tanh(residual) to the L2-normalised text feature: at alpha_max a
    # graph can turn the D = 256 embedding far from its label-free direction. The unit-RMS
    # variant moves it sqrt(D) = 16 times less: a near-identity (the earlier default).
    torch.manual_seed(5)
    fusion = GraphFusion(256, scale=scale)
    with torch.no_grad():
        fusion.alpha.fill_(0.2)
        fusion.gate.weight.mul_(50.0)  # saturate tanh: the worst case the bound allows
        t, g = torch.randn(64, 256), F.normalize(torch.randn(64, 256), dim=1)
        cos = (fusion(t, g) * fusion(t, None)).sum(1)
    assert lo <= float(cos.min()) <= hi
    assert GraphFusion(256).scale == "unit_norm"
    with pytest.raises(ValueError, match="scale"):
        GraphFusion(256, scale="rms")
