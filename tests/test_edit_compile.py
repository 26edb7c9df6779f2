import pytest
import torch

from augment.sagan.apply import EditModels, TunedGenerator, edit_batch
from augment.sagan.model import SaganModelConfig, SaGANGenerator


@pytest.mark.slow
def test_compiled_generator_edits_like_the_eager_one():
    """edit.compile: the same edits and masks as eager (within float rounding)."""
    torch.manual_seed(0)
    G = SaGANGenerator(SaganModelConfig(16, 4, 2, 1, 4, 3)).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    eager, compiled = EditModels("Eyeglasses", "g", G, 16), EditModels("Eyeglasses", "g", TunedGenerator(G), 16)
    with torch.inference_mode():
        masks, edits = edit_batch(eager, x, [1, 0])
        masks_c, edits_c = edit_batch(compiled, x, [1, 0])
    assert (masks[1] - masks_c[1]).abs().max() <= 1e-5
    assert max((edits[v] - edits_c[v]).abs().max() for v in (0, 1)) <= 1e-5
    assert (edits[1] - edits[0]).abs().max() > 1e-3  # the two values differ: the comparison is not vacuous
