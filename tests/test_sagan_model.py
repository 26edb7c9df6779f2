"""SaGAN networks: shapes, ranges, the mask's independence of c, the paper's layer tables."""

from __future__ import annotations

import pytest
import torch

from augment.sagan.model import (
    AttributeManipulationNet,
    PRESETS,
    SaganModelConfig,
    SaGANDiscriminator,
    SaGANGenerator,
    conv_macs,
    init_weights,
    count_parameters,
    model_config,
)
from tests.sagan_fixtures import TINY, hard_mask_twin


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("preset", ["paper", "fast"])
def test_shapes_and_ranges_of_both_presets(preset):
    cfg = PRESETS[preset]
    G, D = SaGANGenerator(cfg).eval(), SaGANDiscriminator(cfg).eval()
    s = cfg.image_size
    x = _images(2, s)
    with torch.no_grad():
        edit, mask = G(x, torch.tensor([0.0, 1.0]))
        critic, logit = D(x)
    assert edit.shape == (2, 3, s, s)
    assert mask.shape == (2, 1, s, s)
    assert critic.shape == (2,) and logit.shape == (2,)
    assert edit.min() >= -1 and edit.max() <= 1
    assert mask.min() >= 0 and mask.max() <= 1
    assert torch.isfinite(critic).all() and torch.isfinite(logit).all()


def test_fast_preset_is_smaller_than_paper():
    assert PRESETS["fast"].image_size <= 64
    assert count_parameters(SaGANGenerator(PRESETS["fast"])) < count_parameters(SaGANGenerator(PRESETS["paper"])) / 10


def test_mask_does_not_depend_on_c_and_lies_in_unit_interval():
    G = SaGANGenerator(TINY)
    x = _images(4, 16)
    _, mask0 = G(x, torch.zeros(4))
    _, mask1 = G(x, torch.ones(4))
    assert torch.equal(mask0, mask1)
    assert torch.equal(mask0, G.attention(x))
    assert mask0.min() >= 0 and mask0.max() <= 1
    # ... while the edit itself does depend on c
    assert not torch.equal(G.manipulate(x, torch.zeros(4)), G.manipulate(x, torch.ones(4)))


def test_where_the_mask_is_zero_the_output_is_the_input():
    G = SaGANGenerator(TINY)
    x = _images(2, 16)
    with torch.no_grad():
        G.san.net[-1].bias.fill_(-1e4)  # sigmoid -> exactly 0 everywhere
        edit, mask = G(x, torch.ones(2))
    assert torch.equal(mask, torch.zeros_like(mask))
    assert torch.equal(edit, x)
    # and pixel by pixel through blend: only pixels with mask > 0 may change
    x_a = _images(2, 16, seed=1)
    m = torch.zeros(2, 1, 16, 16)
    m[:, :, 4:8, 4:8] = 0.7
    out = G.blend(x, x_a, m)
    outside = (m == 0).expand_as(x)
    assert torch.equal(out[outside], x[outside])
    assert torch.allclose(out[~outside], (0.7 * x_a + 0.3 * x)[~outside])


def _hand_count_table1(in_ch: int, out_ch: int) -> int:
    """Parameters of Table 1 (AMN / SAN), written out layer by layer.

    Conventions (module docstring): convs before InstanceNorm have no bias,
    InstanceNorm has a scale and a shift per channel, the output conv has a bias.
    """
    conv = lambda k, cin, cout: k * k * cin * cout  # noqa: E731
    norm = lambda c: 2 * c  # noqa: E731
    total = conv(7, in_ch, 32) + norm(32)  # L1
    total += conv(4, 32, 64) + norm(64) + conv(4, 64, 128) + norm(128) + conv(4, 128, 256) + norm(256)  # L2-L4
    total += 4 * (2 * conv(3, 256, 256) + 2 * norm(256))  # L5-L8
    total += conv(4, 256, 128) + norm(128) + conv(4, 128, 64) + norm(64) + conv(4, 64, 32) + norm(32)  # L9-L11
    total += conv(7, 32, out_ch) + out_ch  # L12
    return total


def _hand_count_table2() -> int:
    """Table 2: six 4x4 convs 3->32->...->1024 with bias; D_src 3x3 1024->1, D_cls 2x2 1024->1."""
    chans = [3, 32, 64, 128, 256, 512, 1024]
    trunk = sum(16 * a * b + b for a, b in zip(chans, chans[1:]))
    return trunk + 3 * 3 * 1024 + 2 * 2 * 1024


def test_paper_preset_matches_the_layer_tables():
    cfg = PRESETS["paper"]
    G, D = SaGANGenerator(cfg), SaGANDiscriminator(cfg)
    assert count_parameters(G.amn) == _hand_count_table1(4, 3) == 6_111_331
    assert count_parameters(G.san) == _hand_count_table1(3, 1) == 6_106_625
    assert count_parameters(D) == _hand_count_table2() == 11_190_752
    # the layer sequence itself: kernel, stride, channels
    convs = [m for m in G.amn.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    head = [(m.kernel_size[0], m.stride[0], m.in_channels, m.out_channels) for m in convs[:4]]
    assert head == [(7, 1, 4, 32), (4, 2, 32, 64), (4, 2, 64, 128), (4, 2, 128, 256)]
    tail = [(type(m).__name__, m.kernel_size[0], m.in_channels, m.out_channels) for m in convs[-4:]]
    assert tail == [("ConvTranspose2d", 4, 256, 128), ("ConvTranspose2d", 4, 128, 64),
                    ("ConvTranspose2d", 4, 64, 32), ("Conv2d", 7, 32, 3)]
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in G.amn.modules()) == 1 + 3 + 4 * 2 + 3  # L1, L2-L4, L5-L8, L9-L11
    assert D.cls.kernel_size == (2, 2) and D.src.kernel_size == (3, 3)
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in D.modules())
    leaky = [m for m in D.trunk if isinstance(m, torch.nn.LeakyReLU)]
    assert len(leaky) == 6 and all(m.negative_slope == 0.2 for m in leaky)
    trunk_out = D.trunk(torch.zeros(1, 3, 128, 128))
    assert trunk_out.shape == (1, 1024, 2, 2)


def test_paper_generator_flops():
    """4.31 GMAC (8.6 GFLOP) per 128 px image, counted from the layers (convs only)."""
    cfg = PRESETS["paper"]
    macs = conv_macs(SaGANGenerator(cfg), torch.zeros(1, 3, 128, 128), torch.ones(1))
    # hand count of AMN + SAN from Table 1 (output sizes 128, 64, 32, 16, 16x8, 32, 64, 128, 128)
    def amn(cin, cout):
        m = 128 * 128 * 49 * cin * 32 + 64 * 64 * 16 * 32 * 64 + 32 * 32 * 16 * 64 * 128 + 16 * 16 * 16 * 128 * 256
        m += 8 * 16 * 16 * 9 * 256 * 256
        m += 16 * 16 * 16 * 256 * 128 + 32 * 32 * 16 * 128 * 64 + 64 * 64 * 16 * 64 * 32  # deconvs: per input px
        return m + 128 * 128 * 49 * 32 * cout
    assert macs == amn(4, 3) + amn(3, 1)


def test_init_is_normal_002():
    G = SaGANGenerator(PRESETS["fast"])
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.mean().item()) < 2e-3 and abs(w.std().item() - 0.02) < 2e-3


def test_model_config_overrides_and_errors():
    cfg = model_config("paper", image_size=64)
    assert cfg.image_size == 64 and cfg.d_out_size == 2 and cfg.d_layers == 5
    assert model_config("fast", g_width=8, g_res_blocks=0).g_width == 8
    assert SaganModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="divisible"):
        SaganModelConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown SaGAN preset"):
        model_config("huge")
    with pytest.raises(ValueError, match="unknown field"):
        SaganModelConfig.from_dict({"image_size": 64, "depth": 3})


def test_channels_last_instance_norm_matches_torch():
    """The channels_last fast path computes what nn.InstanceNorm2d computes."""
    from augment.sagan.model import InstanceNorm2d

    ours = InstanceNorm2d(6, affine=True, track_running_stats=False)
    ref = torch.nn.InstanceNorm2d(6, affine=True, track_running_stats=False)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-0.5, 0.5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 6, 9, 7, generator=torch.Generator().manual_seed(1)) * 3 + 1
    xl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    y, y_ref = ours(xl), ref(xr)
    assert y.is_contiguous(memory_format=torch.channels_last)  # took the fast path
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y_ref)
    y.backward(g), y_ref.backward(g)
    torch.testing.assert_close(xl.grad, xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-4, rtol=1e-4)


def test_mask_scaled_to_its_maximum():
    """mask_scale=max: each image's mask is the paper's mask over its own maximum
    (strongest point exactly 1, shape kept); older checkpoints load as 'none'."""
    import dataclasses

    G = SaGANGenerator(TINY)
    G_max = SaGANGenerator(dataclasses.replace(TINY, mask_scale="max"))
    G_max.load_state_dict(G.state_dict())
    x = _images(3, 16)
    b, b_max = G.attention(x), G_max.attention(x)
    peak = b.amax(dim=(2, 3), keepdim=True)
    assert bool((peak < 0.99).all())  # the paper's mask does not reach 1 here...
    assert torch.allclose(b_max.amax(dim=(2, 3)), torch.ones(3, 1))  # ...the scaled one does
    assert torch.allclose(b_max, b / peak)
    assert model_config("fast", mask_scale="max").mask_scale == "max"
    assert SaganModelConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "mask_scale"}) == TINY
    with pytest.raises(ValueError, match="mask_scale"):
        SaganModelConfig(mask_scale="min")


def test_hard_mask_is_the_soft_mask_thresholded_with_its_gradient():
    """mask_scale=hard: b is exactly 1 where the paper's mask is at least half its
    own maximum and 0 elsewhere; its gradient is the soft mask's (straight
    through); with ``soft`` set (the training warm-up) it is the paper's mask."""
    G, G_hard = hard_mask_twin(SaGANGenerator(TINY))
    x = _images(3, 16)
    b, b_hard = G.attention(x), G_hard.attention(x)
    on = b >= 0.5 * b.amax(dim=(2, 3), keepdim=True)
    assert set(b_hard.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(b_hard == 1, on)
    assert 0 < on.float().mean().item() < 1  # a region, not the whole image
    weight = _images(3, 16, seed=1)[:, :1]
    (b * weight).sum().backward()
    (b_hard * weight).sum().backward()
    for p_soft, p_hard in zip(G.san.parameters(), G_hard.san.parameters()):
        torch.testing.assert_close(p_hard.grad, p_soft.grad)
    G_hard.san.soft = True
    assert torch.equal(G_hard.attention(x), G.attention(x))
    G_hard.san.soft = False
    with torch.no_grad():
        edit, mask = G_hard(x, torch.ones(3))
        x_a = G_hard.manipulate(x, torch.ones(3))
    torch.testing.assert_close(edit, torch.where(on, x_a, x))  # replaced where on, the input elsewhere


def test_unet_skips_let_the_networks_copy_fine_detail():
    """g_skips (beyond the paper): F_m and F_a are U-Nets. Off, the networks and
    their state_dict keys are the paper's layout; on, the same shapes come out, and
    an F_m body trained briefly to copy images of one-pixel lines copies them far
    better than the paper's body, which must pass them through its bottleneck."""
    import dataclasses

    skip_cfg = dataclasses.replace(TINY, g_skips=True)
    assert model_config("fast", g_skips=True).g_skips and not model_config("fast").g_skips
    assert SaganModelConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "g_skips"}) == TINY
    assert all(k.startswith(("amn.net.", "san.net.")) and k.split(".")[2].isdigit()
               for k in SaGANGenerator(TINY).state_dict())  # the paper's Sequential, keys as before
    G = SaGANGenerator(skip_cfg)
    x = _images(3, 16)
    edit, mask = G(x, torch.tensor([0.0, 1.0, 1.0]))
    assert edit.shape == x.shape and mask.shape == (3, 1, 16, 16)

    def copy_error(cfg) -> float:
        torch.manual_seed(0)
        net = AttributeManipulationNet(cfg)
        init_weights(net)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        for _ in range(150):
            lines = -torch.ones(8, 3, 16, 16)
            rows = torch.randint(0, 16, (8,), generator=gen)
            lines[torch.arange(8), :, rows, :] = 1.0  # one bright row per image
            loss = (net(lines, torch.ones(8)) - lines).abs().mean()
            opt.zero_grad(), loss.backward(), opt.step()
        return float(loss.detach())

    plain, skips = copy_error(TINY), copy_error(skip_cfg)
    assert skips < 0.5 * plain, (skips, plain)
