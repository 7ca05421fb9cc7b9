"""The zoom image tower: find the lesion in the frame, then look at it closely.

Why: a small CNN trained on the labels learns Shape 88 / Margins 92 from a square round the
lesion but only 64 / 83 from the whole 128 px frame (bench/ceiling.py, docs/data.md): the
descriptors are in the pixels, the tower has to find a 30-55 px lesion among them. This tower
keeps the timm trunk and its average-pooled projection (so it starts as exactly the model it
wraps) and adds

- a lesion finder on the trunk's last feature map: per-cell logits whose softmax gives the
  square's centre (the expected cell centre: continuous, any input size) and whose attention-
  pooled feature gives its half side;
- a small CNN that sees that square resampled to ``crop`` px from the same input
  (``grid_sample`` on a grid built from constants, Mul and Add: ONNX GridSample, opset 16+, no
  AffineGrid), average and max pooled, projected by a zero-initialised linear layer and added to
  the trunk's embedding.

In training the square can be the stored truth (``truth``/``pick``: the crop branch first learns
what lesions look like, then lives with its own boxes); the finder's prediction is kept in
``last_box`` for the box loss. Exported and served, the tower always uses its own square: the
ONNX graph is image -> embedding like every other tower, so the SDK does not change.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def square_grid(size: int) -> torch.Tensor:
    """1 x size x size x 2: the pixel centres of a size x size output in grid_sample's -1..1
    (what ``affine_grid`` with ``align_corners=False`` builds for the identity)."""
    u = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([gx, gy], -1)[None]


def sample_square(x: torch.Tensor, box: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The squares ``box`` (N x 3: centre x, centre y, half side as fractions of the input) of
    ``x`` resampled on ``grid`` (``square_grid``), zeros outside: constants, Mul, Add and one
    GridSample in ONNX."""
    centre = box[:, None, None, :2] * 2 - 1  # N x 1 x 1 x 2, in grid_sample's -1..1
    g = grid * (2 * box[:, None, None, 2:3]) + centre
    return F.grid_sample(x, g.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def _cbr(i: int, o: int, s: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class ZoomVisual(nn.Module):
    """Wraps an open_clip ``TimmModel`` (``trunk`` + ``head``, kept under the same names so a
    checkpoint of the plain tower loads into it unchanged)."""

    HEAD = ("where", "size", "lesion", "lesion_proj")  # the modules it adds (RunConfig.zoom_lr_scale)

    def __init__(self, base: nn.Module, embed_dim: int, crop: int = 64, min_half: float = 0.05):
        super().__init__()
        if not (hasattr(base, "trunk") and hasattr(base, "head")):
            raise TypeError(f"base: expected an open_clip TimmModel (trunk + head), found {type(base).__name__}")
        if not 16 <= int(crop) <= 256:
            raise ValueError(f"crop: expected 16..256 pixels, found {crop}")
        self.trunk, self.head = base.trunk, base.head
        width = int(base.trunk.num_features)
        self.crop, self.min_half = int(crop), float(min_half)
        self.where = nn.Conv2d(width, 1, 1)  # per-cell "the lesion is here" logits
        self.size = nn.Linear(width, 1)  # half side from the attended feature
        self.lesion = nn.Sequential(*_cbr(3, 32, 2), *_cbr(32, 48, 1), *_cbr(48, 96, 2), *_cbr(96, 96, 1),
                                    *_cbr(96, 160, 2), *_cbr(160, 192, 2))
        self.lesion_proj = nn.Linear(384, int(embed_dim), bias=False)
        nn.init.zeros_(self.lesion_proj.weight)  # starts as the wrapped tower, exactly
        self.register_buffer("unit_grid", square_grid(self.crop), persistent=False)  # 1 x c x c x 2
        self.last_box: torch.Tensor | None = None

    def find(self, fmap: torch.Tensor) -> torch.Tensor:
        """N x 3 (centre x, centre y, half side) as fractions of the input, from the feature map."""
        n, _, h, w = fmap.shape
        att = self.where(fmap).flatten(1).softmax(1)  # N x hw
        # int64 Range, then a cast: an fp16 export turns float constants into float16, and
        # onnxruntime has no float16 Range
        ys = (torch.arange(h, device=fmap.device).to(fmap.dtype) + 0.5) / h
        xs = (torch.arange(w, device=fmap.device).to(fmap.dtype) + 0.5) / w
        cx = att @ xs.repeat(h)
        cy = att @ ys.repeat_interleave(w)
        pooled = (fmap.flatten(2) * att[:, None]).sum(2)
        half = self.min_half + (0.5 - self.min_half) * self.size(pooled).squeeze(1).sigmoid()
        return torch.stack([cx, cy, half], 1)

    def look(self, x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """The square ``box`` (N x 3) of ``x`` resampled to crop x crop (zeros outside)."""
        return sample_square(x, box, self.unit_grid)

    def forward(self, x: torch.Tensor, truth: torch.Tensor | None = None,
                pick: torch.Tensor | None = None) -> torch.Tensor:
        """Image N x 3 x H x W -> embedding N x D. ``truth`` (N x 3) replaces the found square
        where ``pick`` (N, bool) is set (training only)."""
        fmap = self.trunk.forward_features(x)
        pooled = self.trunk.forward_head(fmap, pre_logits=True)  # the wrapped tower's average pool
        found = self.find(fmap)
        self.last_box = found
        box = found.detach()  # the box loss trains the finder; the crop branch only uses it
        if truth is not None:
            if pick is None or pick.shape != (len(x),) or truth.shape != (len(x), 3):
                raise ValueError("truth/pick: expected N x 3 squares and N flags for the batch")
            box = torch.where(pick[:, None], truth.to(box.dtype), box)
        h = self.lesion(self.look(x, box).contiguous(memory_format=torch.contiguous_format))
        z = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        return self.head(pooled) + self.lesion_proj(z)


def box_loss(found: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 0.05, summed over centre x, y and half side, mean over frames) of the
    found squares against the truth, over the frames that have one (``truth[:, 0] > 0``:
    column 0 flags a lesion, columns 1-3 the square); 0 when none has."""
    has = truth[:, 0] > 0
    if not bool(has.any()):
        return found.sum() * 0.0  # keeps the graph (DDP) without moving anything
    return F.smooth_l1_loss(found[has], truth[has, 1:].to(found.dtype), beta=0.05, reduction="sum") / int(has.sum())


def wrap_zoom(model: nn.Module, embed_dim: int, cfg: dict | None = None) -> nn.Module:
    """Replace ``model.visual`` (a TimmModel) by a ZoomVisual around it; ``cfg`` = zoom_cfg."""
    cfg = dict(cfg or {})
    unknown = set(cfg) - {"crop", "min_half"}
    if unknown:
        raise ValueError(f"zoom_cfg: unknown keys {sorted(unknown)}; expected crop, min_half")
    model.visual = ZoomVisual(model.visual, embed_dim, **cfg)
    return model
