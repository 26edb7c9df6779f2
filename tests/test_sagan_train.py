"""SaGAN training: balanced sampling, exact resume, refusing a checkpoint of another attribute, the stage."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.config import AttributeRecipe, ConfigError, PipelineConfig, TrainSaganConfig
from augment.judges.regions import region_mask
from augment.sagan import schedule as S
from augment.sagan import train as T
from augment.sagan.data import BalancedBatchSampler, ImageDataset, attribute_rows
from augment.sagan.generators import export_generator, load_generator
from augment.data.celeba import attribute_index
from augment.sagan.model import SaganModelConfig
from tests.sagan_fixtures import TINY, make_dataset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_set(tmp_path) -> ImageDataset:
    aligned, _ = make_dataset(tmp_path, n=16)
    paths, labels = attribute_rows(aligned, "Eyeglasses", ["train", "val", "test"])
    return ImageDataset(paths, 16, labels)


def test_balanced_sampler_halves_and_is_a_pure_function_of_the_batch_number():
    labels = np.array([1] + [0] * 15)  # one positive in sixteen, as rare as it gets
    s = BalancedBatchSampler(labels, 8, seed=3)
    it = iter(s)
    batches = [next(it) for _ in range(6)]
    for b in batches:
        assert [labels[i] for i in b] == [1] * 4 + [0] * 4
    later = iter(BalancedBatchSampler(labels, 8, seed=3, start=4))
    assert next(later) == batches[4] and next(later) == batches[5]
    # the 15 negatives are all used once before any repeats (one permutation per epoch)
    negs = [i for b in batches[:4] for i in b[4:]]
    assert len(set(negs[:15])) == 15
    # two ranks take interleaved global batches
    r1 = iter(BalancedBatchSampler(labels, 8, seed=3, rank=1, world_size=2))
    assert next(r1) == batches[1] and next(r1) == batches[3]
    with pytest.raises(Exception, match="none has value 1"):
        BalancedBatchSampler(np.zeros(4), 4, seed=0)


def test_unknown_labels_are_skipped(tmp_path):
    aligned, _ = make_dataset(tmp_path, n=12, unknown=3)
    paths, labels = attribute_rows(aligned, "Eyeglasses", ["train", "val", "test"])
    assert len(paths) == 9 and set(labels.tolist()) == {0, 1}
    names = {p.name for p in paths}
    assert not names & {"000009.png", "000010.png", "000011.png"}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    states, _ = ckpt.load(path)
    return {f"{part}.{k}": v for part in ("G", "D") for k, v in states[part].items()}


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, tiny_set):
    sagan_cfg = TrainSaganConfig(steps=40, batch_size=4, checkpoint_every=20, sample_every=1000, log_every=10,
                            deterministic=True)
    straight = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "a", seed=5)
    first = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5, steps=20)
    assert first.name == "step_0000020"
    resumed = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5)
    assert resumed.name == straight.name == "step_0000040"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6
    # the optimiser moments too, so the next step would also agree
    sa, _ = ckpt.load(straight)
    sb, _ = ckpt.load(resumed)
    assert torch.allclose(sa["opt_G"]["state"][0]["exp_avg"], sb["opt_G"]["state"][0]["exp_avg"], atol=1e-6)
    # metrics.jsonl has each logged step once, even across the resume
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]
    # a different seed gives different weights (the comparison above can fail)
    other = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "c", seed=6, steps=20)
    b20, c20 = _weights(tmp_path / "b" / "checkpoints" / "step_0000020"), _weights(other)
    assert max((b20[k] - c20[k]).abs().max().item() for k in c20) > 1e-3


def test_a_checkpoint_for_another_attribute_is_refused(tmp_path, tiny_set):
    sagan_cfg = TrainSaganConfig(steps=2, batch_size=4, checkpoint_every=2, sample_every=1000, log_every=1)
    last = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "run", seed=0)
    with pytest.raises(ckpt.CheckpointError, match="Eyeglasses.*Smiling"):
        T.train("Smiling", tiny_set, TINY, sagan_cfg, tmp_path / "run", seed=0)
    with pytest.raises(ckpt.CheckpointError, match="attribute='Eyeglasses'.*attribute='Smiling'"):
        load_generator(last, "Smiling")
    G, meta = load_generator(last, "Eyeglasses")
    assert meta["attribute"] == "Eyeglasses" and meta["step"] == 2
    assert meta["model_config"] == TINY.to_dict() and meta["format_version"] == ckpt.FORMAT_VERSION
    # a checkpoint of another model size is refused as well, naming both
    wider = SaganModelConfig(**{**TINY.to_dict(), "g_width": 8})
    with pytest.raises(ckpt.CheckpointError, match="model_config"):
        T.train("Eyeglasses", tiny_set, wider, TrainSaganConfig(steps=4, batch_size=4), tmp_path / "run", seed=0)


def test_metrics_samples_and_checkpoints_are_written(tmp_path, tiny_set):
    sagan_cfg = TrainSaganConfig(steps=4, batch_size=4, checkpoint_every=1, sample_every=2, log_every=2, sample_images=4)
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "run", seed=0, samples_dir=tmp_path / "samples")
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [2, 4]
    for key in ("d_real", "d_fake", "wasserstein", "d_gp", "d_cls", "d_acc_real", "g_adv", "g_cls",
                "g_rec_dual", "g_rec_id", "mask_mean", "step_time_s"):
        assert all(np.isfinite(ln[key]) for ln in lines), key
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["step_0000002.png", "step_0000004.png"]
    from PIL import Image

    assert Image.open(tmp_path / "samples" / grids[0]).size == (4 * 16, 4 * 16)  # 4 columns, 4 rows
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step_0000003", "step_0000004"]  # the last two only


def test_stage_trains_one_generator_per_attribute(tmp_path):
    aligned, _ = make_dataset(tmp_path / "data", n=16)
    cfg = PipelineConfig(
        train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1,
                                     attributes=("Eyeglasses",), steps=2, batch_size=4, checkpoint_every=2,
                                     sample_every=2, log_every=1),
        device="cpu",
    )
    run_dir = tmp_path / "train_sagan"
    run_dir.mkdir()
    out = T.run_stage(cfg, {"aligned": aligned}, run_dir)
    gens = out["generators"]
    path = mf.write(gens, run_dir / "generators.parquet")
    back = mf.read(path, "generators")
    row = back.df.iloc[0]
    assert row["attribute"] == "Eyeglasses" and row["step"] == 2 and row["image_size"] == 16
    labelled_train = sum(1 for _, r in aligned.df.iterrows() if r["split"] == "train" and r["attributes"] is not None)
    assert row["preset"] == "fast" and row["train_images"] == labelled_train
    gen_dir = back.root / row["path"]
    assert row["generator_id"] == ckpt.weights_id(gen_dir)
    G, meta = load_generator(gen_dir, "Eyeglasses")
    assert meta["kind"] == "sagan_generator" and meta["config_hash"]
    sources = sorted(set(aligned.df["source"]))
    assert meta["data"] == {"sources": sources, "images": labelled_train}  # what augment edit warns from
    states, _ = ckpt.load(gen_dir)
    assert set(states) == {"G"}  # the export holds the generator alone
    assert (run_dir / "samples" / "Eyeglasses" / "step_0000002.png").is_file()


def test_region_term_trains_on_the_templates_region_and_needs_a_template(tmp_path):
    """lambda_region: the stage places the attribute's region from the aligned
    manifest's template and logs the mask outside it; without a template it is a
    config error naming the key."""
    aligned, _ = make_dataset(tmp_path / "data", n=16)
    cfg = PipelineConfig(
        train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1,
                                     attributes=("Eyeglasses",), steps=2, batch_size=4, checkpoint_every=2,
                                     sample_every=2, log_every=1, lambda_region=10.0),
        device="cpu",
    )
    with pytest.raises(ConfigError, match="train_sagan.lambda_region.*template"):
        T.run_stage(cfg, {"aligned": aligned}, tmp_path / "none")
    aligned.meta["extra"] = {"template": "arcface", "size": 16}
    T.run_stage(cfg, {"aligned": aligned}, tmp_path / "run")
    last = json.loads((tmp_path / "run" / "Eyeglasses" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["g_mask_outside"] > 0  # a fresh mask (about 0.5 everywhere) lies outside the eye band too
    np.testing.assert_array_equal(T._mask_region(aligned, "Eyeglasses", 10.0, 16),
                                  region_mask("Eyeglasses", "arcface", 16))
    assert T._mask_region(aligned, "Eyeglasses", 0.0, 16) is None


def test_warm_up_and_lr_decay_are_off_by_default_and_follow_the_step():
    paper = TrainSaganConfig(steps=100, lr=1e-3)
    assert all(S.rec_weight_scale(s, paper) == 1.0 and S.learning_rate(s, paper) == 1e-3 for s in range(100))
    sagan_cfg = TrainSaganConfig(steps=100, lr=1e-3, rec_warmup=10, lr_decay_from=0.5)
    assert S.rec_weight_scale(0, sagan_cfg) == pytest.approx(0.1) and S.rec_weight_scale(9, sagan_cfg) == 1.0
    assert S.rec_weight_scale(50, sagan_cfg) == 1.0
    assert S.learning_rate(49, sagan_cfg) == 1e-3 and S.learning_rate(50, sagan_cfg) == pytest.approx(1e-3)
    assert S.learning_rate(75, sagan_cfg) == pytest.approx(0.5e-3) and S.learning_rate(99, sagan_cfg) == pytest.approx(0.02e-3)


def test_hard_mask_trains_soft_for_its_warm_up_then_hard_and_resumes_exactly(tmp_path, tiny_set, monkeypatch):
    """mask_scale=hard with mask_soft_steps: the SAN is soft for the first steps,
    hard after them and after training; a resumed run matches a straight one."""
    import dataclasses

    hard = dataclasses.replace(TINY, mask_scale="hard")
    sagan_cfg = TrainSaganConfig(steps=6, batch_size=4, checkpoint_every=2, sample_every=1000, log_every=2,
                                 deterministic=True, mask_soft_steps=3)
    seen: list[bool] = []
    step = T.train_step

    def spy(G, *args, **kwargs):
        seen.append(bool(T.dist.unwrap(G).san.soft))
        return step(G, *args, **kwargs)

    monkeypatch.setattr(T, "train_step", spy)
    straight = T.train("Eyeglasses", tiny_set, hard, sagan_cfg, tmp_path / "a", seed=5)
    assert seen == [True, True, True, False, False, False]
    T.train("Eyeglasses", tiny_set, hard, sagan_cfg, tmp_path / "b", seed=5, steps=2)
    resumed = T.train("Eyeglasses", tiny_set, hard, sagan_cfg, tmp_path / "b", seed=5)
    a, b = _weights(straight), _weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    G, _ = load_generator(straight, "Eyeglasses")  # what eval_sagan and edit rebuild: hard, not soft
    with torch.no_grad():
        assert set(G.attention(tiny_set[0][0][None]).unique().tolist()) <= {0.0, 1.0}


def test_ema_generator_is_the_average_of_g_is_exported_and_resumes_exactly(tmp_path, tiny_set):
    """g_ema: every checkpoint keeps the moving average of G's weights (ramped in,
    a function of the step), the exported generator is that average, and a resumed
    run gives the same average; off, nothing is averaged (the paper)."""
    assert S.ema_decay(0, 0.999) == pytest.approx(0.1) and S.ema_decay(10_000, 0.999) == 0.999
    sagan_cfg = TrainSaganConfig(steps=6, batch_size=4, checkpoint_every=3, sample_every=1000, log_every=3,
                                 deterministic=True, g_ema=0.9)
    straight = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "a", seed=5)
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5, steps=3)
    resumed = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5)
    (sa, _), (sb, _) = ckpt.load(straight), ckpt.load(resumed)
    assert max((sa["G_ema"][k] - sb["G_ema"][k]).abs().max().item() for k in sa["G_ema"]) <= 1e-6
    # the average lags G: it is not G's last weights
    assert max((sa["G_ema"][k] - sa["G"][k]).abs().max().item() for k in sa["G"]) > 1e-4
    assert "G_ema" in ckpt.load(tmp_path / "b" / "checkpoints" / "step_0000003")[0]  # in every checkpoint
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    want = {k: 0.75 * v + 0.25 * b.state_dict()[k] for k, v in a.state_dict().items()}
    S.update_ema(a, b, 0.75)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, want[k])
    gen = export_generator(straight, tmp_path / "gen")
    G, meta = load_generator(gen, "Eyeglasses")
    assert meta["ema"] is True
    for k, v in G.state_dict().items():
        assert torch.equal(v, sa["G_ema"][k]), k
    plain = T.train("Eyeglasses", tiny_set, TINY, TrainSaganConfig(steps=3, batch_size=4, sample_every=1000),
                    tmp_path / "c", seed=5)
    assert "G_ema" not in ckpt.load(plain)[0]


def test_all_terms_beyond_the_paper_train_and_resume_exactly(tmp_path, tiny_set):
    """Every extra key on at once: the loop runs, logs the extra terms, and a resumed
    run (lr schedule, warm-up and smudges are functions of the step) matches."""
    sagan_cfg = TrainSaganConfig(steps=12, batch_size=4, checkpoint_every=6, sample_every=1000, log_every=6,
                            deterministic=True, detach_mask_identity=True, lambda_area=5.0, mask_area_min=0.1,
                            mask_area_max=0.3, lambda_tv=1.0, lambda_bin=1.0, rec_warmup=4, lr_decay_from=0.5,
                            d_smudge_fraction=0.5, diffaugment="color,translation,cutout")
    blobs = [np.array([[8, 6, 3, 2]], np.float32)] * len(tiny_set)
    straight = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "a", seed=5, blobs=blobs)
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5, steps=6, blobs=blobs)
    resumed = T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "b", seed=5, blobs=blobs)
    a, b = _weights(straight), _weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    last = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("d_cls_smudge", "g_mask_area", "g_mask_tv", "g_mask_bin"):
        assert np.isfinite(last[key]), key
    # without blobs the smudge term is absent (no landmarks: nothing to smudge)
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "c", seed=5, steps=6)
    assert "d_cls_smudge" not in json.loads((tmp_path / "c" / "metrics.jsonl").read_text().splitlines()[-1])
    # faded patches instead of dark ones reach D_cls: the same seed trains other weights
    faded = T.train("Eyeglasses", tiny_set, TINY, dataclasses.replace(sagan_cfg, d_smudge_kind="fade"),
                    tmp_path / "d", seed=5, steps=6, blobs=blobs)
    dark6 = _weights(T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "e", seed=5, steps=6, blobs=blobs))
    assert max((dark6[k] - _weights(faded)[k]).abs().max().item() for k in dark6) > 1e-4
    noised = T.train("Eyeglasses", tiny_set, TINY, dataclasses.replace(sagan_cfg, d_smudge_kind="noise"),
                     tmp_path / "f", seed=5, steps=6, blobs=blobs)
    assert max((dark6[k] - _weights(noised)[k]).abs().max().item() for k in dark6) > 1e-4


@pytest.mark.parametrize("objective", ["hinge", "nonsaturating"])
def test_modern_objective_projection_and_change_aware_mask_train_and_resume_exactly(tmp_path, tiny_set, objective):
    """The objectives beyond the paper with a lazy R1, D's own lr, a projection critic
    and an F_a that sees the change: the loop runs, logs R1 on its steps only, and a
    resumed run matches a straight one."""
    mcfg = dataclasses.replace(TINY, d_projection=True, mask_input="image+change")
    sagan_cfg = TrainSaganConfig(steps=8, batch_size=4, checkpoint_every=4, sample_every=1000, log_every=1,
                                 deterministic=True, n_critic=1, objective=objective, r1_gamma=1.0, r1_every=2,
                                 lr_d=4e-4, lambda_cls=5.0)
    straight = T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "a", seed=3)
    T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "b", seed=3, steps=4)
    resumed = T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "b", seed=3)
    a, b = _weights(straight), _weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    with_r1 = [line for line in lines if "d_r1" in line]
    assert with_r1 and len(with_r1) < len(lines)  # lazily: on every other critic step
    assert all(np.isfinite(line["d_r1"]) and line["d_gp"] == 0 for line in with_r1)
    G, _ = load_generator(straight, "Eyeglasses")
    x = torch.rand(2, 3, TINY.image_size, TINY.image_size) * 2 - 1
    c = torch.tensor([0.0, 1.0])
    assert G(x, c, c_src=c)[1].abs().max().item() == 0.0  # no change asked: no mask, the input itself
    assert G(x, 1 - c, c_src=c)[1].abs().max().item() > 0.0


def test_spectral_norm_critic_trains_resumes_exactly_and_bounds_each_layer(tmp_path, tiny_set):
    """d_norm spectral: every conv of D (and the projection embedding) is spectrally
    normalised, its power-iteration state is checkpointed (a resumed run matches a
    straight one), and each normalised weight's largest singular value is about 1."""
    from augment.sagan.model import SaGANDiscriminator

    mcfg = dataclasses.replace(TINY, d_projection=True, d_norm="spectral")
    D = SaGANDiscriminator(mcfg)
    convs = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Embedding))]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    D.train()
    for _ in range(30):  # the power iteration converges while D runs
        D(torch.rand(2, 3, TINY.image_size, TINY.image_size), torch.tensor([0, 1]))
    top = [torch.linalg.matrix_norm(m.weight.reshape(m.weight.shape[0], -1), ord=2).item() for m in convs]
    assert max(abs(s - 1) for s in top) < 0.05, top

    sagan_cfg = TrainSaganConfig(steps=6, batch_size=4, checkpoint_every=3, sample_every=1000, log_every=1,
                                 deterministic=True, n_critic=1, objective="hinge")
    straight = T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "a", seed=3)
    T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "b", seed=3, steps=3)
    resumed = T.train("Eyeglasses", tiny_set, mcfg, sagan_cfg, tmp_path / "b", seed=3)
    a, b = _weights(straight), _weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    with pytest.raises(Exception, match="d_norm"):
        dataclasses.replace(TINY, d_norm="weight")


def _with_smiling(aligned):
    """``aligned`` with Smiling set where there are no glasses: a second attribute with both values."""
    smiling, glasses = attribute_index("Smiling"), attribute_index("Eyeglasses")

    def one(attrs):
        if attrs is None:
            return None
        attrs = attrs.copy()
        attrs[smiling] = -attrs[glasses]
        return attrs

    aligned.df["attributes"] = aligned.df["attributes"].map(one)
    return aligned


def test_per_attribute_keys_train_that_generator_as_a_section_of_its_own_would(tmp_path):
    """train_sagan.per_attribute: Eyeglasses with its own steps and lambda_cls, Smiling
    with the section's; each generator is bit-for-bit the one a run of that
    attribute alone with those keys makes, and the manifest records its own steps."""
    aligned = _with_smiling(make_dataset(tmp_path / "data", n=16)[0])

    def cfg(attributes, steps, lambda_cls=1.0, per_attribute=None):
        return PipelineConfig(
            train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1,
                                         attributes=attributes, steps=steps, lambda_cls=lambda_cls, batch_size=4,
                                         checkpoint_every=2, sample_every=2, log_every=1, threads=1,
                                         per_attribute=per_attribute or {}),
            device="cpu",
        )

    def trained(name, config):
        run_dir = tmp_path / name
        run_dir.mkdir()
        return T.run_stage(config, {"aligned": aligned}, run_dir)["generators"].df

    both = trained("both", cfg(("Eyeglasses", "Smiling"), 4,
                               per_attribute={"Eyeglasses": AttributeRecipe(steps=2, lambda_cls=3.0)}))
    glasses = trained("glasses", cfg(("Eyeglasses",), 2, lambda_cls=3.0))
    smiling = trained("smiling", cfg(("Smiling",), 4))
    assert list(both["step"]) == [2, 4]
    assert both["generator_id"][0] == glasses["generator_id"][0]
    assert both["generator_id"][1] == smiling["generator_id"][0]
    plain = trained("plain", cfg(("Eyeglasses",), 2))  # the keys do reach the training
    assert plain["generator_id"][0] != glasses["generator_id"][0]


def test_parallel_attributes_train_in_processes_to_the_weights_of_one_after_the_other(tmp_path):
    """train_sagan.parallel: 2 trains two attributes at once in spawned processes;
    each generator is bit-for-bit the one a sequential run with the same thread
    count makes (the data order depends on seed and attribute only)."""
    aligned = _with_smiling(make_dataset(tmp_path / "data", n=16)[0])
    ids = {}
    for parallel in (1, 2):
        cfg = PipelineConfig(
            train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1,
                                         attributes=("Eyeglasses", "Smiling"), steps=2, batch_size=4,
                                         checkpoint_every=2, sample_every=2, log_every=1, threads=1,
                                         parallel=parallel),
            device="cpu",
        )
        run_dir = tmp_path / f"parallel{parallel}"
        run_dir.mkdir()
        gens = T.run_stage(cfg, {"aligned": aligned}, run_dir)["generators"].df
        assert list(gens["attribute"]) == ["Eyeglasses", "Smiling"]
        ids[parallel] = list(gens["generator_id"])
    assert ids[1] == ids[2] and ids[1][0] != ids[1][1]


def test_parallel_shares_the_cores_out_when_threads_is_zero(monkeypatch):
    monkeypatch.setattr(T.os, "cpu_count", lambda: 8)
    assert T.threads_per_process(0, 2) == 4
    assert T.threads_per_process(0, 16) == 1
    assert T.threads_per_process(3, 2) == 3
    assert T.threads_per_process(0, 1) == 0  # one process: torch's default, as before


WORKER_SCRIPT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from augment.sagan.train import _die_with_parent

def busy(path):  # a worker in the middle of a long training
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        pool.submit(busy, sys.argv[1])
        time.sleep(120)
"""


def _running(pid: int) -> bool:
    """A live process (a zombie waiting for a reaper counts as ended)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc (Linux)")
def test_a_parallel_worker_ends_when_the_stage_process_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "stage.py"
    script.write_text(WORKER_SCRIPT)
    pid_file = tmp_path / "worker.pid"
    stage = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    deadline = time.monotonic() + 60
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the pid written in full
    worker = int(pid_file.read_text())
    assert _running(worker)
    stage.kill()  # as kill -9 of augment run
    stage.wait()
    deadline = time.monotonic() + 30
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker)


def test_a_resume_forgets_the_metrics_lines_logged_after_its_checkpoint(tmp_path, tiny_set):
    """A run killed between checkpoints logged steps that the resumed run logs again:
    the file keeps each step once, so the CPU-hours summed from it count each once."""
    sagan_cfg = TrainSaganConfig(steps=4, batch_size=4, checkpoint_every=2, sample_every=1000, log_every=1)
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "run", seed=5)
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step_0000004")  # killed after logging 3 and 4
    T.train("Eyeglasses", tiny_set, TINY, sagan_cfg, tmp_path / "run", seed=5)  # resumes at step 2
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_finished_stage_asked_for_more_steps_ends_where_one_longer_run_ends(tmp_path):
    """What the runner relies on when it keeps train_sagan's folder for more steps
    (stages.more_sagan_steps): the stage run again with more steps in the same
    folder exports the generator of one run that long."""
    aligned, _ = make_dataset(tmp_path / "data", n=16)

    def cfg(steps):
        return PipelineConfig(
            train_sagan=TrainSaganConfig(preset="fast", image_size=16, g_width=4, d_width=4, res_blocks=1,
                                         attributes=("Eyeglasses",), steps=steps, batch_size=4, checkpoint_every=2,
                                         sample_every=2, log_every=1, threads=1),
            device="cpu",
        )

    ids = {}
    for name, plan in (("longer", (2, 4)), ("straight", (4,)), ("short", (2,))):
        run_dir = tmp_path / name
        run_dir.mkdir()
        for steps in plan:
            gens = T.run_stage(cfg(steps), {"aligned": aligned}, run_dir)["generators"].df
        ids[name] = gens["generator_id"][0]
        assert gens["step"][0] == plan[-1]
    assert ids["longer"] == ids["straight"] != ids["short"]
