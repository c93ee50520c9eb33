"""The encoders' pooling: exact shapes and the invariances it promises (model/network.py)."""

from __future__ import annotations

import torch

from auditor.model.network import ResNet18Encoder, SmallCNN, SpacePool, TimePool


def test_time_pool_is_mean_over_frequency_then_max_plus_mean_over_time() -> None:
    x = torch.randn(3, 5, 4, 7)
    m = x.mean(dim=2)
    assert torch.allclose(TimePool()(x), m.max(dim=2).values + m.mean(dim=2))


def test_time_pool_hears_a_short_event_alike_wherever_it_is_in_the_window() -> None:
    early, late = torch.zeros(1, 2, 3, 20), torch.zeros(1, 2, 3, 20)
    early[..., 2:4] = 1.0
    late[..., 15:17] = 1.0
    assert torch.equal(TimePool()(early), TimePool()(late))
    assert (TimePool()(early) > 0.9).all()  # the max keeps the event's full level; an average over 20 steps is 0.1


def test_spectrogram_encoders_give_one_vector_per_clip_for_any_length() -> None:
    torch.manual_seed(0)
    cnn = SmallCNN(1, 4, spectrogram=True).eval()
    for length in (64, 256, 300):
        assert cnn(torch.randn(2, 1, 64, length)).shape == (2, 32)
    resnet = ResNet18Encoder(1).eval()
    assert isinstance(resnet.net.avgpool, TimePool)
    assert resnet(torch.randn(2, 1, 64, 128)).shape == (2, 512)


def test_space_pool_is_max_plus_mean_over_positions_and_sees_a_small_object_anywhere() -> None:
    x = torch.randn(2, 3, 5, 6)
    assert torch.allclose(SpacePool()(x), x.amax(dim=(2, 3)) + x.mean(dim=(2, 3)))
    corner, centre = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    corner[..., 0, 0] = 1.0
    centre[..., 4, 3] = 1.0
    assert torch.equal(SpacePool()(corner), SpacePool()(centre))


def test_frame_encoder_pools_by_space() -> None:
    torch.manual_seed(0)
    cnn = SmallCNN(3, 4).eval()
    assert cnn(torch.randn(2, 3, 64, 64)).shape == (2, 32)
    assert isinstance(cnn.net[-1], SpacePool)
