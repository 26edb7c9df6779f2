"""SaGAN network sizes: the model config, its presets and their overrides.

Kept apart from ``augment.sagan.model`` (which builds the networks) so that a
config can be checked at load without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class SizeError(ValueError):
    """Sizes the networks cannot take; ``field`` names the SaganModelConfig field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


MASK_SCALES = ("none", "max", "hard")
MASK_INPUTS = ("image", "image+change")
D_NORMS = ("none", "spectral")


@dataclass(frozen=True)
class SaganModelConfig:
    """Sizes of both networks. ``paper`` = SAGAN.md Tables 1 and 2.

    - image_size: H = W of the square input images.
    - g_width: channels of F_m / F_a after their first 7x7 conv (paper 32);
      each stride-2 conv doubles them.
    - g_downsample: stride-2 4x4 convs (and as many 4x4 deconvs) (paper 3).
    - g_res_blocks: residual blocks at the bottleneck (paper 4).
    - d_width: channels of D's first conv (paper 32); each next conv doubles them.
    - d_layers: stride-2 4x4 convs in D's trunk (paper 6: 128 px -> 2x2).
    - mask_scale: ``none`` (the paper: b = sigmoid(F_a's output)) or ``max``
      (beyond the paper: b divided by its own maximum over the image, so every
      mask reaches 1 where the attention is strongest and an edit is never a
      faint blend) or ``hard`` (beyond the paper: b is 1 where the sigmoid is
      at least half its maximum over the image and 0 elsewhere, with
      straight-through gradients; ``SpatialAttentionNet``).
    - g_skips: beyond the paper (False there): U-Net skip connections in F_m and
      F_a, each decoder level also seeing the encoder's features of its
      resolution (``augment.sagan.model.UNet``), so that F_m can copy the fine
      detail of its input and F_a can draw a thin frame's shape.
    - d_projection: beyond the paper (False there): D_src also scores the image
      with its attribute value, a projection discriminator (Miyato & Koyama
      2018): the critic adds <embed(c), mean-pooled trunk features>, so an edit
      must look like a real face *with* the asked value, not only move D_cls.
    - mask_input: beyond the paper (``image`` there): ``image+change`` lets F_a
      also see the requested change (target minus source value, -1 / 0 / +1, as a
      constant plane) and multiplies its mask by |change|, so an edit to the
      image's own value has an all-zero mask by construction (PA-GAN's idea).
    - d_norm: beyond the paper (``none`` there): ``spectral`` puts spectral
      normalisation (Miyato et al. 2018) on every conv of D (and the projection
      embedding), bounding D's Lipschitz constant without a gradient penalty's
      second backward pass; D only, so an exported generator is unchanged.
    """

    image_size: int = 128
    g_width: int = 32
    g_downsample: int = 3
    g_res_blocks: int = 4
    d_width: int = 32
    d_layers: int = 6
    mask_scale: str = "none"
    g_skips: bool = False
    d_projection: bool = False
    mask_input: str = "image"
    d_norm: str = "none"

    def __post_init__(self) -> None:
        if self.d_norm not in D_NORMS:
            raise SizeError("d_norm", f"model config: d_norm must be one of {D_NORMS}, got {self.d_norm!r}")
        if self.mask_input not in MASK_INPUTS:
            raise SizeError("mask_input", f"model config: mask_input must be one of {MASK_INPUTS}, "
                                          f"got {self.mask_input!r}")
        if self.mask_scale not in MASK_SCALES:
            raise SizeError("mask_scale", f"model config: mask_scale must be one of {MASK_SCALES}, "
                                          f"got {self.mask_scale!r}")
        for name in ("image_size", "g_width", "g_downsample", "d_width", "d_layers"):
            if getattr(self, name) < 1:
                raise SizeError(name, f"model config: {name} must be >= 1, got {getattr(self, name)}")
        if self.g_res_blocks < 0:
            raise SizeError("g_res_blocks", f"model config: g_res_blocks must be >= 0, got {self.g_res_blocks}")
        for name, n in (("g_downsample", self.g_downsample), ("d_layers", self.d_layers)):
            if self.image_size % (2**n):
                raise SizeError(
                    "image_size", f"model config: image_size {self.image_size} must be divisible by 2**{name} = {2**n}"
                )

    @property
    def d_out_size(self) -> int:
        """Spatial size of D's trunk output (the D_cls kernel size)."""
        return self.image_size // (2**self.d_layers)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SaganModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"model config: unknown field(s) {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, SaganModelConfig] = {
    "paper": SaganModelConfig(image_size=128, g_width=32, g_downsample=3, g_res_blocks=4, d_width=32, d_layers=6),
    # For CPUs (the sagan_synth pipeline, tests). Measured on a shared 2-core
    # CPU, one thread, batch 16, one generator step (3 critic steps + 1 G step):
    #   64 px, g_width 16, d_width 32: G 178 MMAC/img, 5.7 s/step
    #   64 px, g_width 8,  d_width 16: G  53 MMAC/img, 1.7 s/step
    #   48 px, g_width 8,  d_width 32: G  30 MMAC/img, ~1.2 s/step
    # 32 px was rejected: the attribute classifier cannot see glasses there
    # (accuracy 0.58 vs 0.99 at 48 px). The 48 px model edits Eyeglasses on
    # SynthFaces after ~750 steps (pipelines/sagan_synth.yaml).
    "fast": SaganModelConfig(image_size=48, g_width=8, g_downsample=2, g_res_blocks=2, d_width=32, d_layers=4),
}


def model_config(preset: str, image_size: int = 0, g_width: int = 0, d_width: int = 0,
                 g_res_blocks: int = -1, mask_scale: str = "none", g_skips: bool = False,
                 d_projection: bool = False, mask_input: str = "image", d_norm: str = "none") -> SaganModelConfig:
    """A preset, with any of its sizes overridden (0 / -1 = keep the preset's).

    Changing ``image_size`` keeps D's output at the preset's spatial size by
    adjusting its number of layers when needed (e.g. paper at 64 px -> 5 layers).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown SaGAN preset {preset!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[preset]
    changes: dict = {}
    if image_size:
        changes["image_size"] = image_size
        d_layers = base.d_layers
        while d_layers > 1 and image_size // (2**d_layers) < base.d_out_size:
            d_layers -= 1
        changes["d_layers"] = d_layers
    if g_width:
        changes["g_width"] = g_width
    if d_width:
        changes["d_width"] = d_width
    if g_res_blocks >= 0:
        changes["g_res_blocks"] = g_res_blocks
    if mask_scale != "none":
        changes["mask_scale"] = mask_scale
    if g_skips:
        changes["g_skips"] = True
    if d_projection:
        changes["d_projection"] = True
    if mask_input != "image":
        changes["mask_input"] = mask_input
    if d_norm != "none":
        changes["d_norm"] = d_norm
    return dataclasses.replace(base, **changes)


def stage_model_config(s) -> SaganModelConfig:
    """The model config that a ``train_sagan`` section (``TrainSaganConfig``) asks for;
    raises SizeError naming the field it cannot take."""
    return model_config(s.preset, s.image_size, s.g_width, s.d_width, s.res_blocks, s.mask_scale, s.g_skips,
                        s.d_projection, s.mask_input, s.d_norm)
