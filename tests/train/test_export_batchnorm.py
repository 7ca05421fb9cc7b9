"""BatchNorm re-estimation before export (export/batchnorm.py): the running statistics become
those of the served pixels, nothing else changes, a failure leaves the model as it was."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from usclip_sdk.cli.bench import synthetic_screen  # noqa: E402
from usclip_sdk.pixels import PreprocessSpec, model_input  # noqa: E402
from usclip_sdk.region import detect_region  # noqa: E402
from usclip_train.export.batchnorm import has_batchnorm, recalibrate_batchnorm  # noqa: E402

SPEC = PreprocessSpec(image_size=(32, 32))


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Dropout(0.5), torch.nn.Flatten())


def _frames(n=6):
    return [synthetic_screen(120, 160, i) for i in range(n)]


def test_running_stats_become_those_of_the_served_pixels():
    net, frames = _net(), _frames()
    conv, bn = net[0], net[1]
    assert recalibrate_batchnorm(net, frames, SPEC, batch=4) == 1
    x = torch.from_numpy(np.concatenate([model_input(f, detect_region(f).bbox, detect_region(f).mask, SPEC,
                                                     dtype="float32") for f in frames]))
    with torch.no_grad():
        y = conv(x)
    # cumulative average over the two batches (4 + 2 frames) of per-batch means: equal-weighted
    # by batch, so compare with the same averaging
    means = [y[:4].mean((0, 2, 3)), y[4:].mean((0, 2, 3))]
    torch.testing.assert_close(bn.running_mean, (means[0] + means[1]) / 2, atol=1e-5, rtol=1e-4)
    assert bn.momentum == 0.1 and bn.num_batches_tracked == 2
    assert not net.training and not bn.training and not net[3].training  # left in eval mode


def test_weights_are_untouched_and_a_tower_without_batchnorm_is_left_alone():
    net = _net()
    w = [p.detach().clone() for p in net.parameters()]
    recalibrate_batchnorm(net, _frames(2), SPEC)
    assert all(torch.equal(a, b) for a, b in zip(w, net.parameters()))
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    assert not has_batchnorm(plain) and recalibrate_batchnorm(plain, _frames(2), SPEC) == 0


def test_a_bad_frame_restores_the_old_statistics():
    net = _net()
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.fill_(3.0)
    with pytest.raises(Exception):
        recalibrate_batchnorm(net, _frames(2) + [np.zeros((4, 4, 7), np.uint8)], SPEC, batch=1)
    assert torch.all(bn.running_mean == 3.0) and bn.momentum == 0.1
    with pytest.raises(ValueError, match="no frames"):
        recalibrate_batchnorm(net, [], SPEC)
