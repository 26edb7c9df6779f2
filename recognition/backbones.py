"""Face-recognition backbones: pure ``nn.Module``s built from a small frozen config.

Every backbone maps a batch of aligned faces ``(N, 3, S, S)`` in ``[-1, 1]`` to
raw (not yet normalised) embeddings ``(N, E)``; heads and evaluation
L2-normalise them. Nothing here reads files or downloads: pretrained weights
come only from a local file through :func:`load_pretrained`.

Registry (``build_backbone(BackboneConfig(name=...))``):

- ``resnet18``: the paper's ResNet-18 (BasicBlock stages of 2, 2, 2, 2). The
  paper does not say which ResNet-18 variant; we use the face-recognition form
  of insightface's ``iresnet`` ("r18": BN-conv-BN-PReLU-conv-BN blocks, a stride-1
  stem, four stride-2 stages, a flattened BN-dropout-FC-BN output), the usual
  ResNet-18 of ArcFace-style training. ``width`` narrows it for CPUs.
- ``iresnet50``: the same layout with stages of 3, 4, 14, 3 (insightface "r50").
- ``mobilefacenet``: MobileFaceNet (Chen et al. 2018), light enough for CPUs;
  its global depthwise (GDC) kernel is ``image_size / 16``.
- ``inception_resnet_v1``: facenet-pytorch's ``InceptionResnetV1`` architecture,
  built with ``pretrained=None`` (no download) and trained from scratch unless
  a local weights file is given.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from augment.config import ConfigError
from recognition.sizes import backbone_size_problem


class BackboneError(ConfigError, ValueError):
    """An unknown backbone name, an impossible size, or unusable weights (a configuration error)."""


@dataclass(frozen=True)
class BackboneConfig:
    """What a backbone is built from (stored in every checkpoint's metadata).

    ``width``: base channel count of the ResNets (64 = the published width);
    0 = the backbone's default. Ignored by the other backbones.
    """

    name: str = "resnet18"
    embedding_size: int = 512
    image_size: int = 112
    width: int = 0
    dropout: float = 0.0


# --------------------------------------------------------------------------- #
# ResNet-18 / iResNet-50 (insightface's iresnet layout)
# --------------------------------------------------------------------------- #


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN-conv3x3-BN-PReLU-conv3x3(stride)-BN plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _check_size(cfg: BackboneConfig) -> None:
    problem = backbone_size_problem(cfg.name, cfg.image_size)  # the rule load_config checks too
    if problem:
        raise BackboneError(f"{cfg.name}: {problem}")


class IResNet(nn.Module):
    """Face ResNet: ``(N,3,S,S)`` in [-1,1] -> ``(N,E)``; ``S`` divisible by 16."""

    def __init__(self, layers: tuple[int, ...], cfg: BackboneConfig):
        super().__init__()
        _check_size(cfg)
        w = cfg.width or 64
        widths = [w, 2 * w, 4 * w, 8 * w]
        self.conv1 = _conv3x3(3, w)
        self.bn1 = nn.BatchNorm2d(w, eps=1e-5)
        self.prelu = nn.PReLU(w)
        stages, cin = [], w
        for n, cout in zip(layers, widths):
            blocks = [IBasicBlock(cin, cout, stride=2)] + [IBasicBlock(cout, cout) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        side = cfg.image_size // 16
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cin * side * side, cfg.embedding_size)
        self.features = nn.BatchNorm1d(cfg.embedding_size, eps=1e-5)
        # insightface fixes the embedding BN's scale at 1 so the head sees a
        # plainly standardised vector.
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


# --------------------------------------------------------------------------- #
# MobileFaceNet
# --------------------------------------------------------------------------- #


class ConvBlock(nn.Sequential):
    """conv-BN(-PReLU); ``linear=True`` drops the activation (bottleneck outputs, GDC)."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, p: int = 0, groups: int = 1, linear: bool = False):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if not linear:
            layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (stride), 1x1 linear project."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            ConvBlock(cin, expand),
            ConvBlock(expand, expand, 3, stride, 1, groups=expand),
            ConvBlock(expand, cout, linear=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet: ``(N,3,S,S)`` in [-1,1] -> ``(N,E)``; ``S`` divisible by 16."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        _check_size(cfg)

        def residual(c: int, n: int, expand: int) -> nn.Sequential:
            return nn.Sequential(*[DepthWise(c, c, expand, residual=True) for _ in range(n)])

        self.body = nn.Sequential(
            ConvBlock(3, 64, 3, 2, 1),
            ConvBlock(64, 64, 3, 1, 1, groups=64),
            DepthWise(64, 64, 128, stride=2),
            residual(64, 4, 128),
            DepthWise(64, 128, 256, stride=2),
            residual(128, 6, 256),
            DepthWise(128, 128, 512, stride=2),
            residual(128, 2, 256),
            ConvBlock(128, 512),
        )
        side = cfg.image_size // 16
        # Global depthwise conv: a learned, position-aware pooling of the final map.
        self.gdc = ConvBlock(512, 512, side, groups=512, linear=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.linear = nn.Linear(512, cfg.embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(cfg.embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.gdc(self.body(x)), 1)
        return self.bn(self.linear(self.dropout(x)))


# --------------------------------------------------------------------------- #
# Inception-ResNet-v1 (facenet-pytorch's architecture)
# --------------------------------------------------------------------------- #


class InceptionResNetV1(nn.Module):
    """facenet-pytorch's InceptionResnetV1 returning un-normalised embeddings ``(N,E)``.

    Input ``(N,3,S,S)`` in [-1,1] (facenet's own standardisation, (x-127.5)/128,
    is the same range); ``S`` >= 80. Built with ``pretrained=None``: nothing is
    downloaded.
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        _check_size(cfg)
        from facenet_pytorch import InceptionResnetV1

        # classify=True skips facenet's built-in L2 normalisation; its logits
        # layer is dropped because our heads do the classifying.
        net = InceptionResnetV1(pretrained=None, classify=True, num_classes=1, dropout_prob=cfg.dropout)
        net.logits = nn.Identity()
        if cfg.embedding_size != 512:
            net.last_linear = nn.Linear(1792, cfg.embedding_size, bias=False)
            net.last_bn = nn.BatchNorm1d(cfg.embedding_size, eps=0.001, momentum=0.1, affine=True)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #

BACKBONES: dict[str, Callable[[BackboneConfig], nn.Module]] = {
    "resnet18": lambda cfg: IResNet((2, 2, 2, 2), cfg),
    "iresnet50": lambda cfg: IResNet((3, 4, 14, 3), cfg),
    "mobilefacenet": MobileFaceNet,
    "inception_resnet_v1": InceptionResNetV1,
}


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """The backbone named by ``cfg.name``; an unknown name is an error listing the known ones."""
    try:
        factory = BACKBONES[cfg.name]
    except KeyError:
        close = difflib.get_close_matches(cfg.name, BACKBONES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise BackboneError(
            f"unknown backbone '{cfg.name}'{hint} (known: {', '.join(BACKBONES)})"
        ) from None
    if cfg.embedding_size < 1:
        raise BackboneError(f"embedding_size must be positive, got {cfg.embedding_size}")
    return factory(cfg)


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load backbone weights from a local file (``.safetensors``, or a ``.pt``
    state dict read with ``weights_only=True``; never unpickles objects).

    Keys are matched by name; facenet-pytorch files (no ``net.`` prefix, a
    ``logits.*`` classifier) are accepted for ``inception_resnet_v1``. A
    shape mismatch or a file sharing no key with the model is an error.
    Returns the keys of the model the file did not provide and the file's
    unused keys.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"pretrained weights not found: {path} (weights are never downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise BackboneError(f"{path}: not a weights file torch can read safely: {e}") from e
        if not isinstance(state, dict):
            raise BackboneError(f"{path}: expected a state dict, found {type(state).__name__}")
    own = model.state_dict()
    if not any(k in own for k in state) and all(f"net.{k}" in own or k.startswith("logits.") for k in state):
        state = {f"net.{k}": v for k, v in state.items()}
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise BackboneError(f"{path}: no weight names match this backbone ({type(model).__name__})")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in matched.items() if v.shape != own[k].shape]
    if bad:
        raise BackboneError(f"{path}: {len(bad)} weight(s) have the wrong shape, e.g. {bad[0]}")
    model.load_state_dict(matched, strict=False)
    return {"missing": sorted(set(own) - set(matched)), "unused": sorted(set(state) - set(matched))}
