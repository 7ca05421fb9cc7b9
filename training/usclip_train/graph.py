"""Attribute graph (training only): a label graph per sample, fused into the text embedding.

Per sample, a bipartite graph built from its ground-truth labels: ``diagnosis`` nodes (the
dimension-1 tags) fully connected to ``descriptor`` nodes (the tags of dimensions 2-9, a
vocabulary of 88), with one edge type each way. Two heterogeneous graph-convolution layers
(symmetric normalisation D_dst^-1/2 A D_src^-1/2, one weight per edge type, sum over edge
types, ReLU, dropout), mean-pooling per node type, sum, a linear map to the text width and
L2 normalisation give one graph vector per sample; ``GraphFusion`` adds it to the text
embedding through 8-head attention and a gated, bounded residual.

Missing tags (our decision; the paper does not say): a sample with no Diagnosis tag gets the
``unknown`` diagnosis node, one with no tag in dimensions 2-9 the ``unknown`` descriptor node,
so every graph has at least one node of each type and one edge - pooling and normalisation
stay defined, and "nothing known" is a learned embedding rather than a zero vector.

Batched as dense masked tensors: node presence B x 6 and B x 89 is read off the B x 93
multi-hot; the adjacency is their outer product B x 6 x 89; no loop over samples.

Why training only: the graph is built from labels, which an unlabelled image or a free-text
query at inference time does not have. The exported text tower therefore stops before the
graph: ``GraphFusion.forward(t, None)`` (= normalise(LayerNorm(t))) is the label-free text
embedding the exported tower must compute.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usclip_sdk import taxonomy

__all__ = [
    "N_DIAGNOSIS_NODES",
    "N_DESCRIPTOR_NODES",
    "node_masks",
    "bipartite_adjacency",
    "HeteroGraphConv",
    "AttributeGraph",
    "GraphFusion",
    "AttributeGraphFusion",
    "FUSION_SCALES",
]

_N_DX = taxonomy.group_sizes()[0]                       # 5 diagnosis values
_N_DS = sum(taxonomy.group_sizes()[1:])                 # 88 descriptor values
N_DIAGNOSIS_NODES = _N_DX + 1                           # + unknown (index 5)
N_DESCRIPTOR_NODES = _N_DS + 1                          # + unknown (index 88)


def node_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """B x 93 multi-hot -> (diagnosis presence B x 6, descriptor presence B x 89), float.

    The last slot of each is the ``unknown`` node, present exactly when the sample has no
    tag of that node type.
    """
    n = len(taxonomy.class_names())
    if labels.ndim != 2 or labels.shape[1] != n:
        raise ValueError(f"labels: expected a multi-hot matrix B x {n}, found {tuple(labels.shape)}")
    y = (labels > 0).float()
    dx, ds = y[:, :_N_DX], y[:, _N_DX:]
    dx = torch.cat([dx, (dx.sum(1, keepdim=True) == 0).float()], dim=1)
    ds = torch.cat([ds, (ds.sum(1, keepdim=True) == 0).float()], dim=1)
    return dx, ds


def bipartite_adjacency(dx_mask: Tensor, ds_mask: Tensor) -> Tensor:
    """Symmetrically normalised diagnosis -> descriptor adjacency, B x 6 x 89.

    A[b, i, j] = 1 for every present pair (the graph is complete bipartite); normalised by
    out-degree^-1/2 of i (= number of descriptors) and in-degree^-1/2 of j (= number of
    diagnoses). The reverse edge type uses the transpose: the same normalisation.
    """
    a = dx_mask.unsqueeze(2) * ds_mask.unsqueeze(1)
    deg_dx = a.sum(2, keepdim=True).clamp_min(1.0)
    deg_ds = a.sum(1, keepdim=True).clamp_min(1.0)
    return a * deg_dx.rsqrt() * deg_ds.rsqrt()


class HeteroGraphConv(nn.Module):
    """One layer: each node type receives from the other through its edge type's GraphConv.

    h_ds' = relu(A^T (h_dx W_fwd) + b_fwd),  h_dx' = relu(A (h_ds W_rev) + b_rev), dropout,
    absent nodes zeroed. (Each node type is the destination of exactly one edge type, so the
    sum over edge types has one term per destination.)
    """

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fwd = nn.Linear(dim, dim)                 # diagnosis -> descriptor
        self.rev = nn.Linear(dim, dim)                 # descriptor -> diagnosis
        self.drop = nn.Dropout(dropout)

    def forward(self, h_dx: Tensor, h_ds: Tensor, adj: Tensor, dx_mask: Tensor,
                ds_mask: Tensor) -> tuple[Tensor, Tensor]:
        """h_dx (B|1) x 6 x H, h_ds (B|1) x 89 x H, adj B x 6 x 89 -> new (h_dx, h_ds), B-sized.

        A^T (h W) = (A^T h) W, so each product runs on the 6-row side: weight-then-aggregate
        towards descriptors, aggregate-then-weight towards diagnoses. The bias is added after
        aggregation, as in GraphConv.
        """
        new_ds = adj.transpose(1, 2) @ (h_dx @ self.fwd.weight.T) + self.fwd.bias
        new_dx = self.rev(adj @ h_ds)
        new_dx = self.drop(F.relu(new_dx)) * dx_mask.unsqueeze(-1)
        new_ds = self.drop(F.relu(new_ds)) * ds_mask.unsqueeze(-1)
        return new_dx, new_ds


class AttributeGraph(nn.Module):
    """Labels B x 93 -> graph vector B x out_dim (L2-normalised).

    Node embeddings (6 diagnosis, 89 descriptor, ``hidden`` wide) + LayerNorm per node type,
    ``layers`` HeteroGraphConv layers, masked mean-pool per type, sum, Linear -> out_dim.
    """

    def __init__(self, out_dim: int, hidden: int = 128, layers: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if out_dim <= 0 or hidden <= 0 or layers <= 0:
            raise ValueError(f"out_dim/hidden/layers: expected positive, found "
                             f"{out_dim}/{hidden}/{layers}")
        self.dx_embed = nn.Embedding(N_DIAGNOSIS_NODES, hidden)
        self.ds_embed = nn.Embedding(N_DESCRIPTOR_NODES, hidden)
        self.dx_norm = nn.LayerNorm(hidden)
        self.ds_norm = nn.LayerNorm(hidden)
        self.convs = nn.ModuleList(HeteroGraphConv(hidden, dropout) for _ in range(layers))
        self.proj = nn.Linear(hidden, out_dim)

    def forward(self, labels: Tensor) -> Tensor:
        dx_mask, ds_mask = node_masks(labels)
        adj = bipartite_adjacency(dx_mask, ds_mask)
        # Every sample draws its nodes from one shared vocabulary: the first layer reads the
        # 1 x nodes x H table directly (absent nodes have no edges, so need no mask).
        h_dx = self.dx_norm(self.dx_embed.weight).unsqueeze(0)
        h_ds = self.ds_norm(self.ds_embed.weight).unsqueeze(0)
        for conv in self.convs:
            h_dx, h_ds = conv(h_dx, h_ds, adj, dx_mask, ds_mask)
        pooled = (h_dx.sum(1) / dx_mask.sum(1, keepdim=True)
                  + h_ds.sum(1) / ds_mask.sum(1, keepdim=True))
        return F.normalize(self.proj(pooled), dim=-1)


FUSION_SCALES = ("unit_norm", "unit_rms")


class GraphFusion(nn.Module):
    """Text embedding t (query) attends to graph tokens g (key/value); bounded gated residual.

    out = normalise(LayerNorm(t~ + clamp(alpha, 0, alpha_max) * tanh(Linear(attended))))
    where t~ is t rescaled so the graph's share does not depend on the text tower's output norm:
    - ``scale="unit_norm"`` (default, the release's strength): t~ = t / ||t||, the L2-normalised
      text feature the release adds the residual to. Each residual entry (up to alpha_max) is
      then comparable to the whole embedding's entries (~1/sqrt(D)), so the graph can move the
      embedding a long way (cosine to the label-free output down to ~0.3 at D = 256);
    - ``scale="unit_rms"``: t~ = t / rms(t), unit per-entry scale; the same alpha moves the
      embedding sqrt(D) times less (cosine >= 0.98 at D = 256): a near-identity, kept to
      reproduce the earlier runs and for the ablation.
    LayerNorm is scale-invariant, so without the graph either is exactly normalise(LayerNorm(t)),
    what the exported text tower computes. g may be B x D (one token, the AttributeGraph
    vector - attention over one key is then a learned linear map of it) or B x T x D.
    ``g=None`` is the label-free path used at inference.
    """

    def __init__(self, dim: int, heads: int = 8, alpha_init: float = 0.05,
                 alpha_max: float = 0.2, normalize: bool = True, scale: str = "unit_norm") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim: expected a multiple of heads={heads}, found {dim}")
        if not 0.0 <= alpha_init <= alpha_max:
            raise ValueError(f"alpha_init: expected in [0, {alpha_max}], found {alpha_init}")
        if scale not in FUSION_SCALES:
            raise ValueError(f"scale: expected one of {FUSION_SCALES}, found {scale!r}")
        self.scale = scale
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gate = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.alpha_max = float(alpha_max)
        self.norm = nn.LayerNorm(dim)
        self.normalize = normalize

    def effective_alpha(self) -> Tensor:
        """alpha as used: clamped to [0, alpha_max] (gradient flows inside the range)."""
        return self.alpha.clamp(0.0, self.alpha_max)

    def forward(self, t: Tensor, g: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        if t.ndim != 2 or t.shape[1] != self.norm.normalized_shape[0]:
            raise ValueError(f"t: expected B x {self.norm.normalized_shape[0]}, found {tuple(t.shape)}")
        if self.scale == "unit_norm":
            t = t / t.pow(2).sum(-1, keepdim=True).add(1e-12).sqrt()
        else:
            t = t / t.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()
        x = t
        if g is not None:
            kv = g.unsqueeze(1) if g.ndim == 2 else g
            if kv.ndim != 3 or kv.shape[0] != t.shape[0] or kv.shape[2] != t.shape[1]:
                raise ValueError(f"g: expected B x {t.shape[1]} or B x T x {t.shape[1]} with "
                                 f"B={t.shape[0]}, found {tuple(g.shape)}")
            attended, _ = self.attn(t.unsqueeze(1), kv.to(t.dtype), kv.to(t.dtype),
                                    key_padding_mask=key_padding_mask, need_weights=False)
            x = t + self.effective_alpha() * torch.tanh(self.gate(attended.squeeze(1)))
        out = self.norm(x)
        return F.normalize(out, dim=-1) if self.normalize else out


class AttributeGraphFusion(nn.Module):
    """AttributeGraph + GraphFusion: (text embedding B x D, labels B x 93 | None) -> B x D."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 2, dropout: float = 0.1,
                 heads: int = 8, alpha_init: float = 0.05, alpha_max: float = 0.2,
                 scale: str = "unit_norm") -> None:
        super().__init__()
        self.graph = AttributeGraph(dim, hidden=hidden, layers=layers, dropout=dropout)
        self.fusion = GraphFusion(dim, heads=heads, alpha_init=alpha_init, alpha_max=alpha_max,
                                  scale=scale)

    def forward(self, text: Tensor, labels: Tensor | None = None) -> Tensor:
        g = None if labels is None else self.graph(labels.to(text.device))
        return self.fusion(text, g)
