"""The edit stage's core on a small random generator: mask reuse, filters, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from augment import manifest as mf
from augment.config import EditConfig
from augment.edit import edit_rows, target_values
from augment.sagan.apply import EditModels, edit_batch
from augment.sagan.model import SaGANGenerator
from tests.sagan_fixtures import TINY


def tiny_generator(seed=0) -> SaGANGenerator:
    torch.manual_seed(seed)
    return SaGANGenerator(TINY).eval()


def aligned_rows(tmp_path: Path, n: int, size: int = 16) -> tuple[pd.DataFrame, Path]:
    rng = np.random.default_rng(0)
    root = tmp_path / "align"
    (root / "train").mkdir(parents=True)
    rows = []
    for i in range(n):
        rel = f"train/{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / rel)
        attrs = np.full(40, -1, np.int8)
        attrs[15] = 1 if i % 3 == 0 else -1  # Eyeglasses
        rows.append({"sample_id": mf.sample_id("t", rel), "path": rel, "identity": i // 4, "identity_name": str(i // 4),
                     "split": "train", "source": "synthfaces", "attributes": attrs if i % 5 else None})
    return mf.frame("images", rows), root


def test_one_attention_pass_equals_the_generator_per_direction():
    G = tiny_generator()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    models = EditModels("Eyeglasses", "g", G, 16)
    with torch.no_grad():
        masks, edits = edit_batch(models, x, [1, 0])
        assert masks[1] is masks[0]  # F_a does not see c: one attention pass for both values
        for v in (1, 0):
            ref, ref_mask = G(x, torch.full((3,), float(v)))
            torch.testing.assert_close(edits[v], ref, atol=1e-6, rtol=0)
            torch.testing.assert_close(masks[v], ref_mask, atol=1e-6, rtol=0)


class _FixedMask(torch.nn.Module):
    """An attention net whose mask is given: (N,1,S,S) in [0,1] whatever the input."""

    sees_change = False  # as SpatialAttentionNet under mask_input "image"

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask

    def forward(self, x, change=None):
        return self.mask.expand(x.shape[0], -1, -1, -1)


def test_full_resolution_blend_keeps_pixels_outside_the_mask():
    G = tiny_generator()
    # a random net's mask is near 0.5 everywhere; this one is 0 on the left half
    # and rises from 0.1 to 0.9 across the right half, at the generator's 16 px
    small = torch.zeros(1, 1, 16, 16)
    small[..., 8:] = torch.linspace(0.1, 0.9, 8)
    G.san = _FixedMask(small)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        masks, edits = edit_batch(EditModels("Eyeglasses", "g", G, 16), x, [1])
        mask = masks[1]
        x16 = F.interpolate(x, size=16, mode="bilinear", antialias=True, align_corners=False)
        x_a = F.interpolate(G.manipulate(x16, torch.ones(2)), size=32, mode="bilinear", align_corners=False)
    assert mask.shape == (2, 1, 32, 32)
    torch.testing.assert_close(mask, F.interpolate(small, size=32, mode="bilinear", align_corners=False)
                               .clamp(0, 1).expand(2, -1, -1, -1), atol=0, rtol=0)
    out = (mask == 0).expand_as(x)
    assert out[:, :, :, :14].all() and not out[:, :, :, 18:].any()  # the left half, bilinear's edge aside
    # outside the mask the pixels are the full-resolution original's, bit for bit
    assert torch.equal(edits[1][out], x[out])
    # and everywhere the blend is x_a * b + x * (1 - b), at full resolution
    torch.testing.assert_close(edits[1], x_a * mask + x * (1 - mask), atol=1e-6, rtol=0)
    assert (edits[1] - x)[:, :, :, 18:].abs().amax() > 0.05  # inside, the edit does change the image


def test_target_values():
    labels = np.array([1, 0, -1])
    assert target_values("both", labels) == [[1, 0]] * 3
    assert target_values("flip", labels) == [[0], [1], []]
    assert target_values("add", labels) == [[1]] * 3
    assert target_values("remove", labels) == [[0]] * 3


def test_rows_filters_and_resume(tmp_path):
    n = 50  # two chunks of 32
    rows, root = aligned_rows(tmp_path, n)
    G = tiny_generator()
    # the judge says 0.9 for every edit: each edit to 1 passes min_attr_prob 0.45,
    # each edit to 0 (P(absent) = 0.1) must be dropped
    models = [EditModels("Eyeglasses", "gid", G, 16, attr_prob=lambda x: torch.full((x.shape[0],), 0.9))]
    ecfg = EditConfig(directions="both", batch_size=16, min_attr_prob=0.45, shard_size=40, chunk_size=32)
    run = tmp_path / "edit"
    merged, drops = edit_rows(models, rows, root, run, ecfg, torch.device("cpu"))
    assert len(merged) + sum(drops.values()) == 2 * n
    assert drops == {"min_attr_prob": n}
    assert (merged["target_value"] == 1).all() and len(merged) == n
    np.testing.assert_allclose(merged["attr_prob"].to_numpy(float), 0.9, atol=1e-6)
    assert sorted(merged["parent_id"]) == sorted(rows["sample_id"])
    # every path exists, decodes and has the recorded hash; shard folders hold <= shard_size files
    for rel in merged["path"]:
        with Image.open(run / rel) as im:
            assert im.size == (16, 16)
    assert max(len(list(d.iterdir())) for d in run.glob("Eyeglasses/*/*")) <= 40
    assert merged["sample_id"].is_unique
    # the parent's attributes with the edited attribute set to the target
    row = merged[(merged["target_value"] == 1) & merged["attributes"].notna()].iloc[0]
    assert row["attributes"][15] == 1
    mf.write(mf.Manifest("images", merged, run), tmp_path / "edits.parquet")  # validates the schema

    # an interrupted run: one part missing; the rerun redoes exactly that part
    parts = sorted((run / "parts" / "Eyeglasses").glob("*.parquet"))
    assert len(parts) == 2
    parts[1].unlink()
    again, drops2 = edit_rows(models, rows, root, run, ecfg, torch.device("cpu"))
    assert drops2 == drops
    pd.testing.assert_frame_equal(again, merged)


def test_split_batch_gives_the_outputs_of_one_call():
    """On a CPU the edit stage splits a batch over one-thread workers; every image
    is computed on its own, so the split must not change any output."""
    from augment.sagan.apply import Compute, score_batch

    G = tiny_generator()
    models = EditModels("Eyeglasses", "g", G, 16, attr_prob=lambda x: torch.sigmoid(x.mean(dim=(1, 2, 3))))
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compute = Compute(torch.device("cpu"))
        assert compute.parts == 2
        area, out = compute(models, x, [1, 0])
        compute.close()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        ref_area, ref_out = score_batch(models, x, [1, 0])
    finally:
        torch.set_num_threads(before)
    for v in (1, 0):
        np.testing.assert_allclose(area[v], ref_area[v], atol=1e-6)
        np.testing.assert_array_equal(out[v][0], ref_out[v][0])
        np.testing.assert_allclose(out[v][1], ref_out[v][1], atol=1e-6)
        assert out[v][2] is None and ref_out[v][2] is None


def test_flip_skips_every_row_whose_label_is_unknown(tmp_path):
    """The edit stage reads labels with ``attribute_labels``, as training does: a row
    whose ``attributes`` is null, NaN (a missing value pandas filled) or too short to
    hold the attribute is unknown and skipped by ``flip``, never an error."""
    from augment.sagan.data import attribute_labels

    rows, root = aligned_rows(tmp_path, 8)
    rows["attributes"] = rows["attributes"].astype(object)
    rows.at[1, "attributes"] = float("nan")
    rows.at[2, "attributes"] = np.array([], np.int8)
    rows.at[3, "attributes"] = np.full(10, 1, np.int8)  # Eyeglasses is attribute 15
    labels = attribute_labels(rows, "Eyeglasses")
    assert labels.tolist() == [-1, -1, -1, -1, 0, -1, 1, 0]  # row 0 and 5: None (i % 5 == 0)
    models = [EditModels("Eyeglasses", "gid", tiny_generator(), 16)]
    ecfg = EditConfig(directions="flip", batch_size=4, shard_size=40, chunk_size=8)
    merged, drops = edit_rows(models, rows, root, tmp_path / "edit", ecfg, torch.device("cpu"))
    assert drops == {}
    want = {(sid, 1 - int(v)) for sid, v in zip(rows["sample_id"], labels) if v >= 0}
    assert set(zip(merged["parent_id"], merged["target_value"])) == want and len(merged) == len(want) == 3


def _descriptors(crops: np.ndarray) -> np.ndarray:
    """A stand-in identity judge: a crop's first 128 values / 255 as its descriptor,
    so a copy lies at distance 0 and an inverted face far away."""
    return crops.reshape(len(crops), -1)[:, :128].astype(np.float32) / 255


def test_max_id_distance_drops_edits_that_change_the_person_and_counts_them(tmp_path):
    n = 12
    rows, root = aligned_rows(tmp_path, n)
    G = tiny_generator()
    # a mask of 1 everywhere; the edit to 1 keeps the face, the edit to 0 inverts it ("another person")
    G.attention = lambda x, change=None: torch.ones_like(x[:, :1])
    G.manipulate = lambda x, c: torch.where(c.reshape(-1, 1, 1, 1) > 0.5, x, -x)
    models = [EditModels("Eyeglasses", "gid", G, 16, id_descriptors=_descriptors)]
    ecfg = EditConfig(directions="both", batch_size=8, chunk_size=8, max_id_distance=0.6)
    stats: dict = {}
    merged, drops = edit_rows(models, rows, root, tmp_path / "edit", ecfg, torch.device("cpu"), stats=stats)
    assert drops == {"max_id_distance": n}
    assert (merged["target_value"] == 1).all() and len(merged) == n
    assert merged["id_similarity"].isna().all()  # the recognizer's column: not the judge's distance
    d = stats["id_distance"]
    assert d["measured"] == 2 * n and d["dropped"] == n and d["max_id_distance"] == 0.6
    assert d["max"] > 0.6 and 0 < d["mean"] < d["max"]
    # a resumed run reads the distances back from the parts
    again: dict = {}
    edit_rows(models, rows, root, tmp_path / "edit", ecfg, torch.device("cpu"), stats=again)
    assert again == stats
    # off (the default): nothing measured, nothing dropped
    off: dict = {}
    merged, drops = edit_rows(models, rows, root, tmp_path / "off", EditConfig(chunk_size=8), torch.device("cpu"),
                              stats=off)
    assert drops == {} and len(merged) == 2 * n and off == {}


def test_the_identity_judge_scores_aligned_crops_one_call_at_a_time(monkeypatch):
    from augment.judges import identity
    from augment.sagan.apply import identity_descriptors

    made = []

    class FakeJudge:
        def __init__(self, template):
            made.append(template)

        def descriptors(self, crops):
            return _descriptors(crops)

    monkeypatch.setattr(identity, "IdentityJudge", FakeJudge)
    fn = identity_descriptors("sagan")
    crops = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    assert made == ["sagan"] and np.array_equal(fn(crops), _descriptors(crops))


def test_max_id_distance_without_the_judge_is_a_config_error(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from augment.cli import cli
    from augment.config import ConfigError
    from augment.judges import identity
    from augment.validate import load_config

    base = ["stages=read,align,edit", "edit.generators=runs/earlier"]
    with pytest.raises(ConfigError, match="key 'edit.max_id_distance' must be at least 0"):
        load_config(None, [*base, "edit.max_id_distance=-0.1"], check_paths=False)
    monkeypatch.setattr(identity, "missing", lambda: identity.INSTALL)
    assert load_config(None, base, check_paths=False).edit.max_id_distance == 0  # off: no judge needed
    with pytest.raises(ConfigError, match="key 'edit.max_id_distance' is 0.6, but the pretrained identity judge"):
        load_config(None, [*base, "edit.max_id_distance=0.6"], check_paths=False)
    p = tmp_path / "p.yaml"
    p.write_text(f"workdir: {tmp_path / 'work'}\nstages: [synth, read, align, train_sagan, edit]\n"
                 "edit:\n  max_id_distance: 0.6\n")
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 2 and identity.INSTALL in r.output and "Traceback" not in r.output, r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_change_aware_mask_edits_to_the_own_value_are_the_image_and_strength_scales_the_mask():
    """mask_input image+change: with the images' own values given, an edit to that
    value is the image itself; an unknown value (-1) is a full change. edit.strength
    scales the mask, clipped at 1."""
    import dataclasses

    from augment.sagan.model import SaGANGenerator
    from tests.sagan_fixtures import TINY

    torch.manual_seed(0)
    G = SaGANGenerator(dataclasses.replace(TINY, mask_input="image+change")).eval()
    x = torch.rand(3, 3, TINY.image_size, TINY.image_size) * 2 - 1
    with torch.no_grad():
        masks, edits = edit_batch(EditModels("Eyeglasses", "g", G, TINY.image_size), x, [1, 0],
                                  sources=np.array([1, 0, -1]))
        assert masks[1][0].abs().max() == 0 and torch.equal(edits[1][0], x[0])  # already has it
        assert masks[0][1].abs().max() == 0 and torch.equal(edits[0][1], x[1])  # already without it
        assert masks[1][1].abs().max() > 0 and masks[0][0].abs().max() > 0 and masks[1][2].abs().max() > 0
        strong, _ = edit_batch(EditModels("Eyeglasses", "g", G, TINY.image_size, strength=3.0), x, [1])
        torch.testing.assert_close(strong[1], (edit_batch(EditModels("Eyeglasses", "g", G, TINY.image_size), x,
                                                          [1])[0][1] * 3).clamp(max=1))
