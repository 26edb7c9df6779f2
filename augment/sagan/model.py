"""SaGAN networks (Zhang et al., ECCV 2018): pure ``nn.Module``s built from a frozen config.

- ``AttributeManipulationNet`` F_m: RGB + a constant plane holding c -> edited
  image I_a, (N,3,H,W) in [-1, 1] (tanh).
- ``SpatialAttentionNet`` F_a: RGB only -> mask b, (N,1,H,W) in [0, 1] (sigmoid).
- ``SaGANGenerator``: G(I, c) = F_m(I, c) * b + I * (1 - b). Because b does not
  depend on c, ``attention`` / ``manipulate`` / ``blend`` are exposed so that one
  SAN pass can serve both edit directions of an image.
- ``SaGANDiscriminator``: six stride-2 convs + LeakyReLU(0.2) (no norm), a critic
  head D_src (3x3 conv) and an attribute head D_cls (a conv whose kernel covers
  the whole trunk output, giving one logit per image).

Choices the paper leaves open, made here: a residual block is
conv3x3-IN-ReLU-conv3x3-IN plus identity; convolutions followed by
InstanceNorm carry no bias (the norm would cancel it) and InstanceNorm has a
learned affine scale and shift; the output convolutions of F_m and F_a carry a
bias; the discriminator's trunk convolutions carry a bias, its two heads do not.
The critic of an image is the mean of the D_src map. Weights start N(0, 0.02)
(norm scales at 1, biases at 0).

Presets: ``paper`` is Tables 1 and 2 of the paper at 128x128; ``fast`` is a
narrower, smaller-image model that trains in minutes on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

# The sizes live in sizes.py (no torch, so a config is checked at load without it); imported from here too.
from augment.sagan.sizes import PRESETS, SaganModelConfig, SizeError, model_config  # noqa: F401


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for conv weights (the paper's init); norm scale 1; biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same parameters, same state_dict keys, same math)
    with a faster path for channels_last tensors on the CPU.

    PyTorch computes instance norm as a batch norm of an (1, N*C, H, W) view,
    which turns a channels_last input into a contiguous output: the next
    convolution then converts it back, and on the CPU both copies cost more
    than the norm itself. Here the statistics come from the (N, H*W, C) view of
    the same memory and the output stays channels_last (the paper preset's
    generator forward ran ~1.3x faster on a 2-core CPU). Other inputs take
    PyTorch's own path, bit for bit.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and x.dim() == 4 and self.affine and not self.track_running_stats
                and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()):
            return super().forward(x)
        n, c, h, w = x.shape
        v = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: the memory is NHWC
        var, mean = torch.var_mean(v, dim=1, keepdim=True, correction=0)
        scale = self.weight.reshape(1, 1, c) * torch.rsqrt(var + self.eps)
        shift = self.bias.reshape(1, 1, c) - mean * scale
        return torch.addcmul(shift, v, scale).reshape(n, h, w, c).permute(0, 3, 1, 2)


def _norm(ch: int) -> nn.InstanceNorm2d:
    return InstanceNorm2d(ch, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3(x))))), channels unchanged."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _norm(ch), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1, bias=False), _norm(ch),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stem(in_ch: int, w: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, w, 7, 1, 3, bias=False), _norm(w), nn.ReLU(inplace=True)]


def _down(w: int) -> list[nn.Module]:
    """Half the resolution, twice the channels."""
    return [nn.Conv2d(w, w * 2, 4, 2, 1, bias=False), _norm(w * 2), nn.ReLU(inplace=True)]


def _up(in_ch: int, out_ch: int) -> list[nn.Module]:
    """Twice the resolution."""
    return [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), _norm(out_ch), nn.ReLU(inplace=True)]


def _encoder_decoder(in_ch: int, out_ch: int, cfg: SaganModelConfig) -> nn.Sequential:
    """The shared layout of F_m and F_a (Table 1), without the output activation."""
    w = cfg.g_width
    layers = _stem(in_ch, w)
    for _ in range(cfg.g_downsample):
        layers += _down(w)
        w *= 2
    layers += [ResidualBlock(w) for _ in range(cfg.g_res_blocks)]
    for _ in range(cfg.g_downsample):
        layers += _up(w, w // 2)
        w //= 2
    layers.append(nn.Conv2d(w, out_ch, 7, 1, 3, bias=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """``_encoder_decoder``'s layout with U-Net skip connections (beyond the paper;
    ``SaganModelConfig.g_skips``): each transposed conv, and the output conv, takes
    the features of the level above concatenated with the encoder's features of
    the same resolution (pix2pix's skips). The paper's F_m must carry every detail
    of its input through the bottleneck (12x12 at 48 px), so it cannot copy a thin
    frame, and the identity term then keeps the mask low wherever it is on.

    x (N, in_ch, H, W) -> (N, out_ch, H, W), no output activation.
    """

    def __init__(self, in_ch: int, out_ch: int, cfg: SaganModelConfig) -> None:
        super().__init__()
        w = cfg.g_width
        self.stem = nn.Sequential(*_stem(in_ch, w))
        self.down = nn.ModuleList()
        for _ in range(cfg.g_downsample):
            self.down.append(nn.Sequential(*_down(w)))
            w *= 2
        self.res = nn.Sequential(*[ResidualBlock(w) for _ in range(cfg.g_res_blocks)])
        self.up = nn.ModuleList()
        for _ in range(cfg.g_downsample):
            self.up.append(nn.Sequential(*_up(2 * w, w // 2)))  # its input: the level below + the skip
            w //= 2
        self.out = nn.Conv2d(2 * w, out_ch, 7, 1, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = self.res(skips[-1])
        for block, skip in zip(self.up, reversed(skips[1:])):
            h = block(torch.cat([h, skip], dim=1))
        return self.out(torch.cat([h, skips[0]], dim=1))


def _body(in_ch: int, out_ch: int, cfg: SaganModelConfig) -> nn.Module:
    return UNet(in_ch, out_ch, cfg) if cfg.g_skips else _encoder_decoder(in_ch, out_ch, cfg)


class AttributeManipulationNet(nn.Module):
    """F_m: (x (N,3,H,W) in [-1,1], c (N,) in {0,1}) -> I_a (N,3,H,W) in [-1,1]."""

    def __init__(self, cfg: SaganModelConfig) -> None:
        super().__init__()
        self.net = _body(4, 3, cfg)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        plane = c.to(x.dtype).reshape(-1, 1, 1, 1).expand(-1, 1, x.shape[2], x.shape[3])
        return torch.tanh(self.net(torch.cat([x, plane], dim=1)))


class SpatialAttentionNet(nn.Module):
    """F_a: x (N,3,H,W) in [-1,1] -> mask b (N,1,H,W) in [0,1]. Never sees c.

    Beyond the paper (``cfg.mask_scale``; "none" is the paper's sigmoid mask):

    - "max" divides each image's mask by its maximum, so its strongest point is
      1: the paper's sigmoid mask tends to stay under 0.5 on a short run, and a
      half blend leaves half the old attribute in place (docs/sagan_ablation.md).
    - "hard" thresholds each image's mask at half its own maximum: b is exactly
      0 or 1, so an edit replaces the region outright instead of blending it,
      and the gradient passes straight through to the sigmoid (the
      straight-through estimator), so F_a still learns the region's shape.
      While ``soft`` is True (the trainer's ``mask_soft_steps`` warm-up) the
      mask is the paper's sigmoid: a threshold needs a mask that already
      points at the attribute.
    """

    def __init__(self, cfg: SaganModelConfig) -> None:
        super().__init__()
        self.sees_change = cfg.mask_input == "image+change"
        self.net = _body(4 if self.sees_change else 3, 1, cfg)
        self.scale_to_max = cfg.mask_scale == "max"
        self.hard = cfg.mask_scale == "hard"
        self.soft = False

    def forward(self, x: torch.Tensor, change: torch.Tensor | None = None) -> torch.Tensor:
        """``change`` (N,) in {-1, 0, 1}: target minus source value, needed (and used)
        only with ``mask_input: image+change``, where b is multiplied by |change|."""
        if self.sees_change:
            if change is None:
                raise ValueError("this generator's F_a sees the requested change (mask_input image+change): "
                                 "pass change = target - source value")
            plane = change.to(x.dtype).reshape(-1, 1, 1, 1).expand(-1, 1, x.shape[2], x.shape[3])
            b = torch.sigmoid(self.net(torch.cat([x, plane], dim=1)))
        else:
            b = torch.sigmoid(self.net(x))
        if self.scale_to_max:
            b = b / b.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        elif self.hard and not self.soft:
            on = (b >= 0.5 * b.amax(dim=(2, 3), keepdim=True)).to(b.dtype)
            b = on + (b - b.detach())  # value: exactly 0 / 1; gradient: that of b
        if self.sees_change:
            b = b * change.to(b.dtype).abs().reshape(-1, 1, 1, 1)  # no change asked: b = 0 exactly
        return b


class SaGANGenerator(nn.Module):
    """G(I, c) = F_m(I, c) * b + I * (1 - b), with b = F_a(I)."""

    def __init__(self, cfg: SaganModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.amn = AttributeManipulationNet(cfg)
        self.san = SpatialAttentionNet(cfg)
        init_weights(self)

    def attention(self, x: torch.Tensor, change: torch.Tensor | None = None) -> torch.Tensor:
        """b = F_a(x): (N,3,H,W) in [-1,1] -> (N,1,H,W) in [0,1]; ``change`` (N,) in {-1,0,1}
        (target minus source value) for a generator whose F_a sees it, else ignored."""
        return self.san(x, change if self.san.sees_change else None)

    @property
    def mask_sees_change(self) -> bool:
        """True when b depends on the requested change (``mask_input: image+change``)."""
        return self.san.sees_change

    def manipulate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """I_a = F_m(x, c): (N,3,H,W) in [-1,1], c (N,) in {0,1} -> (N,3,H,W) in [-1,1]."""
        return self.amn(x, c)

    @staticmethod
    def blend(x: torch.Tensor, x_a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x_a * mask + x * (1 - mask): pixels where mask == 0 are x exactly."""
        return x_a * mask + x * (1 - mask)

    def forward(self, x: torch.Tensor, c: torch.Tensor | tuple[torch.Tensor, ...], with_manipulation: bool = False,
                c_src: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(x (N,3,H,W) in [-1,1], c (N,) in {0,1}) -> (x_edit (N,3,H,W) in [-1,1], mask (N,1,H,W) in [0,1]),
        and I_a = F_m(x, c) as a third element when ``with_manipulation`` (for losses
        that treat F_m and the mask apart; one forward, so DDP sees every parameter).

        ``c`` may be a tuple of K label tensors (N,): x is then edited to each,
        with one SAN pass for all K (b does not depend on c), and every output
        comes back stacked in that order, (K*N, ...), the mask repeated.
        ``c_src`` (N,) in {0,1}: the images' own values, needed by a generator whose
        F_a sees the change (``mask_input: image+change``), ignored otherwise.
        """
        if self.mask_sees_change:
            # b depends on c: one F_a pass per target, each seeing target - source
            if c_src is None:
                raise ValueError("this generator's F_a sees the requested change: pass c_src, the source values")
            targets = c if isinstance(c, tuple) else (c,)
            mask = torch.cat([self.attention(x, t - c_src) for t in targets])
            if isinstance(c, tuple):
                x, c = torch.cat([x] * len(c)), torch.cat(c)
        else:
            mask = self.attention(x)
            if isinstance(c, tuple):
                k = len(c)
                x, mask, c = torch.cat([x] * k), torch.cat([mask] * k), torch.cat(c)
        x_a = self.manipulate(x, c)
        x_edit = self.blend(x, x_a, mask)
        return (x_edit, mask, x_a) if with_manipulation else (x_edit, mask)


class SaGANDiscriminator(nn.Module):
    """x (N,3,H,W) in [-1,1] (and c (N,) for a projection critic) -> (critic (N,)
    unbounded, attr_logit (N,) unbounded).

    ``torch.sigmoid(attr_logit)`` is the probability that the attribute is present.
    """

    def __init__(self, cfg: SaganModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        in_ch, w = 3, cfg.d_width
        for _ in range(cfg.d_layers):
            layers += [nn.Conv2d(in_ch, w, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
            in_ch, w = w, w * 2
        self.trunk = nn.Sequential(*layers)
        self.src = nn.Conv2d(in_ch, 1, 3, 1, 1, bias=False)  # D_src: a WGAN critic map
        self.cls = nn.Conv2d(in_ch, 1, cfg.d_out_size, 1, 0, bias=False)  # D_cls: one logit
        # beyond the paper: the projection term's embedding of c in {0, 1}
        self.embed = nn.Embedding(2, in_ch) if cfg.d_projection else None
        init_weights(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if cfg.d_norm == "spectral":  # after init: the parametrisation keeps the initial weights as its original
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``c`` (N,) in {0,1}: the value each image is scored as having, used (and
        needed) by a projection critic only: critic += <embed(c), mean_hw trunk(x)>."""
        h = self.trunk(x)
        critic = self.src(h).mean(dim=(1, 2, 3))
        if self.embed is not None:
            if c is None:
                raise ValueError("a projection critic (d_projection) scores an image with its value: pass c")
            critic = critic + (self.embed(c.long()) * h.mean(dim=(2, 3))).sum(dim=1)
        attr_logit = self.cls(h).flatten(1)[:, 0]
        return critic, attr_logit


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_macs(module: nn.Module, x: torch.Tensor, *args) -> int:
    """Multiply-accumulates of the convolutions in one forward of ``module`` on ``x``.

    Counted with forward hooks: k_h * k_w * C_in/groups * C_out * H_out * W_out
    per conv / deconv (for a deconv, per input pixel). Norms and activations
    are not counted (they are a fraction of a percent here).
    """
    total = 0

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        if isinstance(m, nn.ConvTranspose2d):
            n, _, h, w = inp[0].shape
            total += n * h * w * kh * kw * m.in_channels * m.out_channels // m.groups
        else:
            n, _, h, w = out.shape
            total += n * h * w * kh * kw * m.in_channels // m.groups * m.out_channels

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            module(x, *args)
    finally:
        for h in handles:
            h.remove()
    return total
