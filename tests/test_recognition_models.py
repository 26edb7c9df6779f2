"""Backbones and heads: shapes, finite outputs, the registry's errors, local pretrained weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from recognition.backbones import BACKBONES, BackboneConfig, BackboneError, build_backbone, load_pretrained
from recognition.heads import ArcFace, CosFace, build_head

SMALL = {  # small widths / sizes so every backbone runs in the fast tier
    "resnet18": BackboneConfig("resnet18", 32, 32, width=8),
    "iresnet50": BackboneConfig("iresnet50", 32, 32, width=4),
    "mobilefacenet": BackboneConfig("mobilefacenet", 32, 32),
    "inception_resnet_v1": BackboneConfig("inception_resnet_v1", 32, 80),
}


def test_every_registered_backbone_is_covered():
    assert set(SMALL) == set(BACKBONES)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_backbone_shapes_and_finite(name):
    cfg = SMALL[name]
    torch.manual_seed(0)
    model = build_backbone(cfg)
    x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    model.train()
    y = model(x)
    assert y.shape == (2, cfg.embedding_size)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, cfg.embedding_size)


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(BackboneError, match="unknown backbone 'resnet19'.*did you mean 'resnet18'"):
        build_backbone(BackboneConfig("resnet19"))


def test_bad_image_size_is_an_error():
    with pytest.raises(BackboneError, match="multiple of 16"):
        build_backbone(BackboneConfig("resnet18", image_size=100, width=8))


def test_default_resnet18_is_the_published_width():
    model = build_backbone(BackboneConfig("resnet18", 512, 112))
    assert model.conv1.out_channels == 64 and model.layer4[0].conv2.out_channels == 512
    assert [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)] == [2, 2, 2, 2]


def test_inception_resnet_v1_downloads_nothing_and_takes_local_weights(tmp_path, monkeypatch):
    import facenet_pytorch.models.inception_resnet_v1 as irv1

    def no_download(*a, **k):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(irv1, "load_weights", no_download)
    cfg = SMALL["inception_resnet_v1"]
    a = build_backbone(cfg)
    # facenet-style keys (no 'net.' prefix, with a logits layer) load into the wrapper
    state = {k.removeprefix("net."): v + 1.0 for k, v in a.state_dict().items() if v.is_floating_point()}
    state["logits.weight"] = torch.zeros(3, 512)
    save_file(state, str(tmp_path / "w.safetensors"))
    b = build_backbone(cfg)
    report = load_pretrained(b, tmp_path / "w.safetensors")
    assert report["unused"] == ["net.logits.weight"]
    assert torch.equal(b.net.conv2d_1a.conv.weight, a.net.conv2d_1a.conv.weight + 1.0)


def test_pretrained_errors(tmp_path):
    model = build_backbone(SMALL["resnet18"])
    with pytest.raises(BackboneError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pt")
    save_file({"fc.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(BackboneError, match="wrong shape"):
        load_pretrained(model, tmp_path / "bad.safetensors")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(BackboneError, match="no weight names match"):
        load_pretrained(model, tmp_path / "other.pt")


@pytest.mark.parametrize("name", ["arcface", "cosface", "softmax"])
def test_heads_give_logits_and_gradients(name):
    torch.manual_seed(0)
    head = build_head(name, 16, 5)
    emb = torch.randn(4, 16, requires_grad=True)
    y = torch.tensor([0, 1, 2, 4])
    logits = head(emb, y)
    assert logits.shape == (4, 5) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert torch.isfinite(emb.grad).all()


def test_margins_follow_the_papers():
    torch.manual_seed(0)
    emb, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    arc, cos = ArcFace(8, 3), CosFace(8, 3)
    cos.weight.data = arc.weight.data.clone()
    c = arc.cosine(emb)
    theta = torch.acos(c.gather(1, y[:, None]))
    la, lc = arc(emb, y), cos(emb, y)
    want_arc = 64 * torch.where(theta + 0.5 < torch.pi, torch.cos(theta + 0.5), c.gather(1, y[:, None]) - 0.5 * torch.sin(torch.tensor(0.5)))
    torch.testing.assert_close(la.gather(1, y[:, None]), want_arc, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(lc.gather(1, y[:, None]), 64 * (c.gather(1, y[:, None]) - 0.35))
    other = torch.ones_like(c, dtype=torch.bool).scatter(1, y[:, None], False)
    torch.testing.assert_close(la[other], 64 * c[other])  # other classes: no margin


def test_unknown_head():
    with pytest.raises(ValueError, match="did you mean 'arcface'"):
        build_head("arcfce", 8, 3)
