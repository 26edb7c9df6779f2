"""SaGAN losses: the gradient penalty against hand computations, the loss recipes, one step each."""

from __future__ import annotations

import math

import pytest
import torch

from augment.config import TrainSaganConfig
from augment.sagan import train as T
from augment.sagan.losses import attribute_loss, d_loss, g_forward, g_loss, gradient_penalty, interpolate
from augment.sagan.model import SaGANDiscriminator, SaGANGenerator
from tests.sagan_fixtures import TINY, hard_mask_twin


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _floats(parts: dict) -> dict[str, float]:
    return {k: float(v) for k, v in parts.items()}


def _g_loss(*args, **kwargs):
    """g_loss with its logged parts as floats (they are 0-dim tensors)."""
    loss, parts = g_loss(*args, **kwargs)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in parts.values())
    return loss, _floats(parts)


def _d_loss(*args, **kwargs):
    loss, parts = d_loss(*args, **kwargs)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in parts.values())
    return loss, _floats(parts)


def _batch(n=4, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, s, s, generator=g) * 2 - 1
    c = torch.tensor([1.0, 0.0] * (n // 2))
    return x, c


def test_interpolate_lies_on_the_segment():
    x_real, _ = _batch(seed=1)
    x_fake, _ = _batch(seed=2)
    alpha = torch.tensor([0.0, 1.0, 0.25, 0.5])
    x_hat = interpolate(x_real, x_fake, alpha)
    assert x_hat.requires_grad
    assert torch.equal(x_hat[0], x_fake[0]) and torch.equal(x_hat[1], x_real[1])
    assert torch.allclose(x_hat[2], 0.25 * x_real[2] + 0.75 * x_fake[2])


def test_gradient_penalty_on_a_linear_critic_equals_the_hand_computation():
    # D(x) = <w, x> + b has gradient w for every input: penalty (||w|| - 1)^2.
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 4, generator=g) * 0.3
    x_real, x_fake = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    x_hat = interpolate(x_real, x_fake, torch.rand(5, generator=g))
    critic = (x_hat * w).sum(dim=(1, 2, 3)) + 0.7
    gp = gradient_penalty(critic, x_hat)
    expected = (math.sqrt(float((w.double() ** 2).sum())) - 1) ** 2
    assert gp.item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_per_sample_norm_on_a_quadratic_critic():
    # D(x) = 0.5 ||x||^2 has gradient x: penalty mean_i (||x_i|| - 1)^2, not (||grad of the sum|| - 1)^2.
    g = torch.Generator().manual_seed(1)
    x_hat = (torch.randn(6, 3, 2, 2, generator=g) * 0.4).requires_grad_(True)
    gp = gradient_penalty(0.5 * (x_hat**2).sum(dim=(1, 2, 3)), x_hat)
    norms = x_hat.detach().double().flatten(1).norm(dim=1)
    assert gp.item() == pytest.approx(float(((norms - 1) ** 2).mean()), rel=1e-5)


def test_gradient_penalty_trains_the_critic():
    w = torch.full((1, 3, 2, 2), 0.9, requires_grad=True)
    x_hat = torch.randn(4, 3, 2, 2).requires_grad_(True)
    gradient_penalty((x_hat * w).sum(dim=(1, 2, 3)), x_hat).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||, ||w|| = 0.9 * sqrt(12)
    nw = 0.9 * math.sqrt(12)
    assert torch.allclose(w.grad, torch.full_like(w, 2 * (nw - 1) * 0.9 / nw), rtol=1e-5)


def test_d_loss_is_the_sum_of_its_parts():
    torch.manual_seed(0)
    D = SaGANDiscriminator(TINY)
    x_real, c = _batch()
    x_fake, _ = _batch(seed=3)
    loss, parts = _d_loss(D, x_real, x_fake, c, torch.rand(4), lambda_gp=10.0, lambda_cls=1.0)
    assert torch.isfinite(loss)
    recomposed = parts["d_fake"] - parts["d_real"] + 10 * parts["d_gp"] + parts["d_cls"]
    assert loss.item() == pytest.approx(recomposed, rel=1e-5, abs=1e-6)
    critic, logit = D(x_real)
    assert parts["d_real"] == pytest.approx(critic.mean().item(), rel=1e-5, abs=1e-7)
    assert parts["d_cls"] == pytest.approx(attribute_loss(logit, c).item(), rel=1e-5)
    assert parts["d_acc_real"] == pytest.approx(((logit > 0).float() == c).float().mean().item())
    assert 0 <= parts["d_acc_real"] <= 1


def test_g_loss_is_the_sum_of_its_parts_and_uses_the_target():
    torch.manual_seed(0)
    G, D = SaGANGenerator(TINY), SaGANDiscriminator(TINY)
    x, c = _batch()
    loss, parts = _g_loss(G, D, x, c, 1 - c, lambda_cls=1.0, lambda1=20.0, lambda2=100.0)
    assert torch.isfinite(loss)
    recomposed = parts["g_adv"] + parts["g_cls"] + 20 * parts["g_rec_dual"] + 100 * parts["g_rec_id"]
    assert loss.item() == pytest.approx(recomposed, rel=1e-5)
    x_id, _ = G(x, c)
    assert parts["g_rec_id"] == pytest.approx((x - x_id).abs().mean().item(), rel=1e-5)
    x_fake, _ = G(x, 1 - c)
    x_rec, _ = G(x_fake, c)
    assert parts["g_rec_dual"] == pytest.approx((x - x_rec).abs().mean().item(), rel=1e-5)
    _, logit = D(x_fake)
    assert parts["g_cls"] == pytest.approx(attribute_loss(logit, 1 - c).item(), rel=1e-5)
    # the (non-paper) mask penalty adds lambda_mask * mean(mask), and only when asked for
    loss_m, parts_m = _g_loss(G, D, x, c, 1 - c, lambda_mask=0.5)
    assert loss_m.item() == pytest.approx(loss.item() + 0.5 * parts["mask_mean"], rel=1e-5)


def test_one_d_step_and_one_g_step_update_only_their_network():
    sagan_cfg = TrainSaganConfig(batch_size=4)
    G, D, opt_G, opt_D = T.build(TINY, sagan_cfg, seed=0, device=torch.device("cpu"))
    x, c = _batch()
    g0 = [p.detach().clone() for p in G.parameters()]
    d0 = [p.detach().clone() for p in D.parameters()]
    parts = T.d_step(G, D, opt_D, x, c, torch.rand(4), sagan_cfg)
    assert all(math.isfinite(v) for v in parts.values())
    assert all(torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    d1 = [p.detach().clone() for p in D.parameters()]
    parts = T.g_step(G, D, opt_G, x, c, sagan_cfg)
    assert all(math.isfinite(v) for v in parts.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d1, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # unfrozen again after the G step


def test_mask_terms_beyond_the_paper_add_their_parts():
    torch.manual_seed(0)
    G, D = SaGANGenerator(TINY), SaGANDiscriminator(TINY)
    x, c = _batch()
    loss, parts = _g_loss(G, D, x, c, 1 - c)
    with torch.no_grad():
        _, mask = G(x, 1 - c)
    area = mask.mean(dim=(1, 2, 3))
    lo, hi = float(area.mean()) + 0.1, 1.0  # every image below the floor by a known amount
    loss_e, parts_e = _g_loss(G, D, x, c, 1 - c, lambda_area=2.0, mask_area=(lo, hi), lambda_tv=3.0, lambda_bin=4.0)
    assert parts_e["g_mask_area"] == pytest.approx(float((lo - area).clamp(min=0).mean()), rel=1e-5)
    tv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()
    assert parts_e["g_mask_tv"] == pytest.approx(tv.item(), rel=1e-5)
    assert parts_e["g_mask_bin"] == pytest.approx((mask * (1 - mask)).mean().item(), rel=1e-5)
    extra = 2 * parts_e["g_mask_area"] + 3 * parts_e["g_mask_tv"] + 4 * parts_e["g_mask_bin"]
    assert loss_e.item() == pytest.approx(loss.item() + extra, rel=1e-5)
    assert "g_mask_area" not in parts  # off by default (the paper's loss)
    # inside [lo, hi] the area prior costs nothing
    _, inside = _g_loss(G, D, x, c, 1 - c, lambda_area=2.0, mask_area=(0.0, 1.0))
    assert inside["g_mask_area"] == 0.0


def test_region_term_costs_the_mask_outside_the_region_and_nothing_inside():
    torch.manual_seed(0)
    G, D = SaGANGenerator(TINY), SaGANDiscriminator(TINY)
    x, c = _batch()
    s = x.shape[-1]
    loss, _ = _g_loss(G, D, x, c, 1 - c)
    with torch.no_grad():
        _, mask = G(x, 1 - c)
    region = torch.zeros(1, 1, s, s)
    region[..., s // 4: s // 2, :] = 1  # a band, as the eye band of an aligned face
    loss_r, parts = _g_loss(G, D, x, c, 1 - c, lambda_region=5.0, region=region)
    outside = (mask * (1 - region)).mean().item()
    assert outside > 0
    assert parts["g_mask_outside"] == pytest.approx(outside, rel=1e-5)
    assert loss_r.item() == pytest.approx(loss.item() + 5 * outside, rel=1e-5)
    # the whole image as the region: nothing lies outside it
    _, everywhere = _g_loss(G, D, x, c, 1 - c, lambda_region=5.0, region=torch.ones(1, 1, s, s))
    assert everywhere["g_mask_outside"] == 0.0
    with pytest.raises(ValueError, match="region"):
        g_loss(G, D, x, c, 1 - c, lambda_region=5.0)


def _rec_id_as_the_papers(**variant):
    """Networks and a batch on which ``variant``'s identity term has the paper's value (asserted)."""
    torch.manual_seed(0)
    G, D = SaGANGenerator(TINY), SaGANDiscriminator(TINY)
    x, c = _batch()
    _, paper = _g_loss(G, D, x, c, 1 - c)
    _, other = _g_loss(G, D, x, c, 1 - c, **variant)
    assert other["g_rec_id"] == pytest.approx(paper["g_rec_id"], rel=1e-5)
    return G, D, x, c


def test_detached_identity_term_has_the_same_value_but_trains_f_m_only():
    G, D, x, c = _rec_id_as_the_papers(detach_mask_identity=True)

    def san_grad(detach: bool) -> float:
        G.zero_grad()
        loss, _ = _g_loss(G, D, x, c, 1 - c, lambda_cls=0.0, lambda1=0.0, lambda2=1.0, detach_mask_identity=detach)
        loss.backward()
        return sum(p.grad.abs().sum().item() for p in G.san.parameters())

    def san_grad_adv_only() -> float:
        G.zero_grad()
        loss, _ = _g_loss(G, D, x, c, 1 - c, lambda_cls=0.0, lambda1=0.0, lambda2=0.0)
        loss.backward()
        return sum(p.grad.abs().sum().item() for p in G.san.parameters())

    adv = san_grad_adv_only()  # F_a's gradient from the adversarial term alone
    assert san_grad(True) == pytest.approx(adv, rel=1e-5)  # the identity term adds nothing to F_a's gradient
    assert san_grad(False) != pytest.approx(adv, rel=1e-3)  # in the paper's loss it does


def test_smudged_images_add_a_d_cls_term_with_their_own_labels():
    torch.manual_seed(0)
    D = SaGANDiscriminator(TINY)
    x_real, c = _batch()
    x_fake, _ = _batch(seed=3)
    alpha = torch.rand(4)
    x_s, _ = _batch(seed=4)
    c_s = torch.tensor([1.0, 0.0])
    loss, parts = _d_loss(D, x_real, x_fake, c, alpha)
    loss_s, parts_s = _d_loss(D, x_real, x_fake, c, alpha, lambda_cls=1.0, x_smudge=x_s[:2], c_smudge=c_s)
    _, logit = D(x_s[:2])
    assert parts_s["d_cls_smudge"] == pytest.approx(attribute_loss(logit, c_s).item(), rel=1e-5)
    assert parts_s["d_real"] == pytest.approx(parts["d_real"], rel=1e-5)  # the critic does not see them
    assert parts_s["d_fake"] == pytest.approx(parts["d_fake"], rel=1e-5)
    assert "d_cls_smudge" not in parts


def test_a_pair_of_labels_shares_one_attention_pass_and_matches_two_calls():
    torch.manual_seed(0)
    G = SaGANGenerator(TINY)
    x, c = _batch()
    both, mask, x_a = G(x, (1 - c, c), with_manipulation=True)
    one, mask_one, x_a_one = G(x, 1 - c, with_manipulation=True)
    other, _, _ = G(x, c, with_manipulation=True)
    assert torch.allclose(both, torch.cat([one, other]), atol=1e-6)
    assert torch.allclose(mask, torch.cat([mask_one, mask_one]), atol=1e-6)
    assert torch.allclose(x_a[:4], x_a_one, atol=1e-6)
    calls = []
    G.san.register_forward_hook(lambda *a: calls.append(1))
    G(x, (1 - c, c))
    assert len(calls) == 1


def _old_train_step(G, D, opt_G, opt_D, batches, tcfg):
    """The step as it was: a no-grad G pass per critic update, then a fresh
    G forward on the doubled batch for the generator update."""
    for x, c, a in batches:
        with torch.no_grad():
            x_fake, _ = G(x, 1 - c)
        loss, _ = d_loss(D, x, x_fake, c, a, lambda_gp=tcfg.lambda_gp, lambda_cls=tcfg.lambda_cls)
        opt_D.zero_grad()
        loss.backward()
        opt_D.step()
    D.requires_grad_(False)
    n = len(x)
    x_both, _ = G(torch.cat([x, x]), torch.cat([1 - c, c]))
    x_rec, _ = G(x_both[:n], c)
    critic, logit = D(x_both[:n])
    loss = (-critic.mean() + tcfg.lambda_cls * attribute_loss(logit, 1 - c)
            + tcfg.lambda1 * (x - x_rec).abs().mean() + tcfg.lambda2 * (x - x_both[n:]).abs().mean())
    opt_G.zero_grad()
    loss.backward()
    opt_G.step()
    D.requires_grad_(True)


def test_train_step_reusing_the_edits_gives_the_weights_of_the_plain_step():
    tcfg = TrainSaganConfig(batch_size=4)
    def nets():
        # SGD, so that the weights differ as much as the gradients do (Adam's
        # first steps move every weight by ~lr whatever its gradient's size)
        G, D, _, _ = T.build(TINY, tcfg, seed=0, device=torch.device("cpu"))
        return G, D, torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)

    ours, plain = nets(), nets()
    for step in range(2):
        batches = [(*_batch(seed=10 * step + k), torch.rand(4, generator=torch.Generator().manual_seed(k)))
                   for k in range(tcfg.n_critic)]
        parts = T.train_step(ours[0], ours[1], ours[2], ours[3], [(x, c, a, None) for x, c, a in batches], tcfg)
        _old_train_step(*plain, batches, tcfg)
        assert len(parts) == tcfg.n_critic + 1 and "g_loss" in parts[-1] and "d_loss" in parts[0]
    for net_ours, net_plain in zip(ours[:2], plain[:2]):
        worst = max((a - b).abs().max().item() for a, b in zip(net_ours.parameters(), net_plain.parameters()))
        assert worst < 1e-5
    moved = max((a - b).abs().max().item() for a, b in
                zip(ours[0].parameters(), nets()[0].parameters()))
    assert moved > 1e-4  # the comparison is not between two untouched networks


def test_identity_through_the_mask_keeps_the_value_and_holds_a_hard_mask_back():
    """identity_through_mask: the identity term's value is the paper's for a soft mask;
    with a hard (straight-through) mask it also has a gradient where the mask is 0,
    so the region cannot grow unopposed."""
    G, D, x, c = _rec_id_as_the_papers(identity_through_mask=True)
    _, G_hard = hard_mask_twin(G)
    grads = {}
    for linear_form in (False, True):
        G_hard.zero_grad()
        n = len(x)
        x_both, mask_both, x_a_both = g_forward(G_hard, x, c, 1 - c)
        mask_both.retain_grad()
        loss, _ = g_loss(G_hard, D, x, c, 1 - c, lambda_cls=0.0, lambda1=0.0, lambda2=1.0,
                         identity_through_mask=linear_form, forward=(x_both, mask_both, x_a_both))
        loss.backward()  # the second half of the mask gets its gradient from the identity term alone
        off = mask_both[n:].detach() == 0
        grads[linear_form] = mask_both.grad[n:][off].abs().sum().item()
    assert grads[False] == 0.0 and grads[True] > 0.0


def test_objectives_beyond_the_paper_have_their_textbook_values():
    from augment.sagan.losses import critic_loss, generator_adversarial

    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-0.5, 1.0])
    assert critic_loss("wgan-gp", real, fake).item() == pytest.approx(0.25 - 1.0)
    assert critic_loss("hinge", real, fake).item() == pytest.approx((0 + 1) / 2 + (0.5 + 2) / 2)
    sp = torch.nn.functional.softplus
    assert critic_loss("nonsaturating", real, fake).item() == pytest.approx(
        (sp(-real).mean() + sp(fake).mean()).item())
    assert generator_adversarial("hinge", fake).item() == pytest.approx(-0.25)
    assert generator_adversarial("nonsaturating", fake).item() == pytest.approx(sp(-fake).mean().item())
    with pytest.raises(ValueError, match="unknown objective"):
        critic_loss("lsgan", real, fake)


def test_r1_penalty_is_the_squared_gradient_norm_on_real_images():
    from augment.sagan.losses import r1_penalty

    w = torch.randn(3, 4, 4)

    def D(x, c):  # a linear critic: its gradient is w for every image
        return (x * w).sum(dim=(1, 2, 3)), torch.zeros(len(x))

    r1, critic, _ = r1_penalty(D, torch.randn(5, 3, 4, 4), torch.zeros(5))
    assert r1.item() == pytest.approx((w ** 2).sum().item(), rel=1e-5)
    assert critic.shape == (5,)


def test_projection_critic_scores_the_value_and_needs_it():
    import dataclasses

    from augment.sagan.model import SaGANDiscriminator
    from tests.sagan_fixtures import TINY

    D = SaGANDiscriminator(dataclasses.replace(TINY, d_projection=True))
    x = torch.randn(2, 3, TINY.image_size, TINY.image_size)
    c0, c1 = D(x, torch.zeros(2))[0], D(x, torch.ones(2))[0]
    assert not torch.allclose(c0, c1)
    assert torch.equal(D(x, torch.zeros(2))[1], D(x, torch.ones(2))[1])  # D_cls does not see c
    with pytest.raises(ValueError, match="pass c"):
        D(x)
