import pytest
import torch

from augment.sagan import diffaug


def _x(n=4, s=16, seed=0):
    return torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_no_policy_is_the_identity_and_d_itself():
    x = _x()
    assert torch.equal(diffaug.augment(x, (), torch.Generator()), x)
    D = object()
    assert diffaug.augmented(D, (), torch.Generator()) is D


def test_policies_are_reproducible_per_seed_and_vary_per_image():
    x = _x()
    pol = diffaug.parse("color,translation,cutout")
    a = diffaug.augment(x, pol, torch.Generator().manual_seed(1))
    b = diffaug.augment(x, pol, torch.Generator().manual_seed(1))
    c = diffaug.augment(x, pol, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    same = diffaug.augment(torch.cat([x[:1]] * 4), pol, torch.Generator().manual_seed(1))
    assert not torch.equal(same[0], same[1])  # each image draws its own parameters


def test_translation_shifts_content_and_fills_zeros():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    y = diffaug.translation(x, torch.Generator().manual_seed(0))
    assert torch.all(y.sum(dim=(1, 2, 3)) == 4)  # a 1-px shift budget keeps the square inside
    assert (y != x).any(dim=(1, 2, 3)).sum() > 0  # some images moved
    centres = [tuple(torch.nonzero(im[0]).float().mean(0).tolist()) for im in y]
    assert len(set(centres)) > 1


def test_cutout_zeroes_one_square_of_a_quarter_side():
    x = torch.ones(8, 3, 16, 16)
    y = diffaug.cutout(x, torch.Generator().manual_seed(0))
    zeros = (y[:, 0] == 0).sum(dim=(1, 2))
    assert torch.all(zeros > 0) and torch.all(zeros <= 5 * 5)


def test_gradients_pass_through_every_policy():
    x = _x().requires_grad_(True)
    diffaug.augment(x, diffaug.parse("color,translation,cutout"), torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_policy_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: color, translation, cutout"):
        diffaug.parse("color,flip")
