"""The network a recognizer trains: a backbone (the embedding the evaluation
uses) under a classification head over the training identities, and its optimiser."""

from __future__ import annotations

import torch
from torch import nn

from recognition.backbones import BackboneConfig, build_backbone, load_pretrained
from recognition.heads import build_head


class FaceClassifier(nn.Module):
    """Backbone + training head: ``(x (N,3,S,S) in [-1,1], labels (N,)) -> logits (N,C)``."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x), labels)


def backbone_config(rec_cfg) -> BackboneConfig:
    return BackboneConfig(rec_cfg.backbone, rec_cfg.embedding_size, rec_cfg.image_size, rec_cfg.width, rec_cfg.dropout)


def build_model(rec_cfg, num_classes: int) -> FaceClassifier:
    """The configured backbone (pretrained weights loaded if set) and head over
    ``num_classes`` identities; initialised from the global torch RNG."""
    backbone = build_backbone(backbone_config(rec_cfg))
    if rec_cfg.pretrained:
        load_pretrained(backbone, rec_cfg.pretrained)
    kw = {}
    if rec_cfg.head != "softmax":
        kw = {"s": rec_cfg.scale} | ({"m": rec_cfg.margin} if rec_cfg.margin >= 0 else {})
    return FaceClassifier(backbone, build_head(rec_cfg.head, rec_cfg.embedding_size, num_classes, **kw))


def make_optimizer(model: nn.Module, rec_cfg) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW; no weight decay on BN/PReLU/bias parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": rec_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if rec_cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=rec_cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=rec_cfg.lr)
