"""InfoNCE and the semantic loss against values worked out by hand; the combined loss's named
terms; the local-loss (DDP) semantics with a simulated two-rank gather."""
import math

import pytest

torch = pytest.importorskip("torch")

from usclip_sdk import taxonomy  # noqa: E402
from usclip_train.loss import ClipLoss, SemanticLoss, UltrasoundClipLoss  # noqa: E402
from usclip_train.semantic import TagSimilarity  # noqa: E402

N = len(taxonomy.class_names())


def lse(*xs):
    return math.log(sum(math.exp(x) for x in xs))


def test_clip_loss_2x2_by_hand():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # logits_per_image = 2 * image @ text.T = [[1.2, 0], [1.6, 2]]
    # logits_per_text  = 2 * text @ image.T = [[1.2, 1.6], [0, 2]]
    ce_img = ((-1.2 + lse(1.2, 0.0)) + (-2.0 + lse(1.6, 2.0))) / 2
    ce_txt = ((-1.2 + lse(1.2, 1.6)) + (-2.0 + lse(0.0, 2.0))) / 2
    got = ClipLoss()(image, text, torch.tensor(2.0))
    assert got.item() == pytest.approx((ce_img + ce_txt) / 2, rel=1e-6)


def test_semantic_loss_2x2_by_hand():
    p = torch.tensor([[0.5, 0.1], [0.2, 0.9]])
    s = torch.tensor([[1.0, 0.3], [0.3, 1.0]])
    tau = 0.07
    mse = (((0.5 - 1) ** 2 + (0.1 - 0.3) ** 2) / 2 + ((0.2 - 0.3) ** 2 + (0.9 - 1) ** 2) / 2) / 2
    assert mse == pytest.approx(0.0775)

    def kl_row(s_row, p_row):
        q = [math.exp(v / tau - lse(*[w / tau for w in s_row])) for v in s_row]
        pp = [math.exp(v / tau - lse(*[w / tau for w in p_row])) for v in p_row]
        return sum(qi * math.log(qi / pi) for qi, pi in zip(q, pp))

    kl = (kl_row([1.0, 0.3], [0.5, 0.1]) + kl_row([0.3, 1.0], [0.2, 0.9])) / 2
    got = SemanticLoss(tau=tau)(p, s)
    assert got.item() == pytest.approx(0.6 * mse + 0.4 * kl, rel=1e-5)
    assert SemanticLoss()(s, s).item() == pytest.approx(0.0, abs=1e-7)


def test_semantic_loss_clamps_logits():
    # tau = 0.01: S/tau = [20, 20] (q = [1/2, 1/2]); P/tau = [90, -90] is clamped to [50, -50].
    p, s = torch.tensor([[0.9, -0.9]]), torch.tensor([[0.2, 0.2]])
    log_p0 = -math.log1p(math.exp(-100))
    log_p1 = -100 - math.log1p(math.exp(-100))
    kl = 0.5 * (math.log(0.5) - log_p0) + 0.5 * (math.log(0.5) - log_p1)   # ~ 49.3
    mse = ((0.9 - 0.2) ** 2 + (-0.9 - 0.2) ** 2) / 2                        # 0.85
    got = SemanticLoss(tau=0.01)(p, s)
    assert got.item() == pytest.approx(0.6 * mse + 0.4 * kl, rel=1e-5)
    unclamped = SemanticLoss(tau=0.01, clamp=1e9)(p, s)                     # gap 180: KL ~ 89.3
    assert unclamped.item() == pytest.approx(0.6 * mse + 0.4 * (kl + 40), rel=1e-5)


def _batch(b=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    y = (torch.rand(b, N, generator=g) < 0.1).float()
    return img, txt, y


def test_combined_terms():
    img, txt, y = _batch()
    sim = TagSimilarity.prior()
    out = UltrasoundClipLoss(sim, lambda_sm=0.5)(img, txt, torch.tensor(10.0), y)
    assert set(out) == {"loss", "clip", "semantic"}
    clip = ClipLoss()(img, txt, torch.tensor(10.0))
    s = UltrasoundClipLoss(sim).soft_labels(y)
    sem = SemanticLoss()(img @ txt.T, s)
    assert out["clip"].item() == pytest.approx(clip.item(), rel=1e-6)
    assert out["semantic"].item() == pytest.approx(sem.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(clip.item() + 0.5 * sem.item(), rel=1e-6)
    plain = UltrasoundClipLoss(sim, lambda_sm=0.0)(img, txt, torch.tensor(10.0), y)
    assert plain["loss"].item() == pytest.approx(clip.item(), rel=1e-6)
    assert not plain["semantic"].requires_grad
    with pytest.raises(ValueError, match="labels"):
        UltrasoundClipLoss(sim, lambda_sm=1.0)(img, txt, torch.tensor(10.0), None)


def test_gradients_reach_features_and_scale():
    img, txt, y = _batch()
    img.requires_grad_(True)
    txt.requires_grad_(True)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    out = UltrasoundClipLoss(TagSimilarity.prior())(img, txt, log_scale.exp(), y)
    out["loss"].backward()
    for t in (img, txt, log_scale):
        assert t.grad is not None and t.grad.abs().sum() > 0


@pytest.mark.parametrize("world", [2, 3])
def test_local_loss_equals_full_batch(world):
    b = 3
    img, txt, y = _batch(b * world, seed=world)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    sim = TagSimilarity.prior()
    full = UltrasoundClipLoss(sim, lambda_sm=1.0)(img, txt, 5.0, y)
    g_full = torch.autograd.grad(full["loss"], (img, txt))

    # Rank r sees only its slice; the gather hands back everyone's rows (with gradient, as
    # torch.distributed.nn.functional.all_gather does), matched by the tensor it is given.
    total, terms = 0.0, {"clip": 0.0, "semantic": 0.0}
    for r in range(world):
        sl = slice(r * b, (r + 1) * b)
        local_img, local_txt, local_y = img[sl], txt[sl], y[sl]
        everyone = {id(local_img): img, id(local_txt): txt, id(local_y): y}

        def gather(t, everyone=everyone):
            return everyone[id(t)]

        out = UltrasoundClipLoss(sim, lambda_sm=1.0, gather=gather, rank=r)(
            local_img, local_txt, 5.0, local_y)
        total = total + out["loss"] / world
        for k in terms:
            terms[k] += out[k].item() / world
    assert terms["clip"] == pytest.approx(full["clip"].item(), rel=1e-5)
    assert terms["semantic"] == pytest.approx(full["semantic"].item(), rel=1e-5)
    g_local = torch.autograd.grad(total, (img, txt))
    for a, c in zip(g_local, g_full):
        assert torch.allclose(a, c, atol=1e-6)


def test_bad_shapes():
    img, txt, y = _batch()
    with pytest.raises(ValueError, match="image_features"):
        ClipLoss()(img, txt[:4], 1.0)
    with pytest.raises(ValueError, match="similarity"):
        SemanticLoss()(img @ txt.T, torch.zeros(6, 5))
    with pytest.raises(ValueError, match="tau"):
        SemanticLoss(tau=0.0)


def _open_clip_loss_module():
    """open_clip/loss.py alone (it imports only torch): the package __init__ costs seconds."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open_clip not installed")
    path = f"{spec.submodule_search_locations[0]}/loss.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_loss", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def test_clip_loss_matches_open_clip():
    img, txt, _ = _batch(9, d=16, seed=7)
    ref = _open_clip_loss_module().ClipLoss()(img, txt, torch.tensor(14.0))
    assert ClipLoss()(img, txt, torch.tensor(14.0)).item() == pytest.approx(ref.item(), rel=1e-6)
