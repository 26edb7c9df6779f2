"""The independent attribute classifier that judges edits (not SaGAN's discriminator).

As in AttGAN/STGAN, edits are scored by a separate CNN trained on REAL
labelled images only, so a generator cannot "succeed" by fooling its own
critic. One multi-label model covers the configured attributes:
x (N,3,S,S) in [-1, 1] -> logits (N,K); ``probabilities`` gives sigmoid(logits).

The model and its loaders are in ``augment/sagan/judge.py``. Training: AdamW, BCE with logits where rows with an
unknown label are masked out and positives are weighted by n_neg / n_pos
(so a rare attribute such as Eyeglasses is not ignored), random horizontal
flips (drawn from (seed, step), so a resumed run is exact).

Beyond that protocol, both off by default (``train_classifier`` keys): with
``smudge_fraction`` a share of each batch gets a dark patch over the
attribute's landmarks with its labels kept (``augment.sagan.smudge``), so the
judge does not take a failed edit's smudge for the attribute (``smudge_kind``:
patches of colour noise instead, or both kinds); with
``counterfactuals`` SynthFaces' exact counterfactuals of training images join
the set with the attribute's label flipped (pairs that differ in it alone).

Whom it learns from (``train_classifier.people``, ``judge.choose_people``):
``same`` (the protocol's) the generator's own training people, the ``train``
split; ``others`` the ``val`` people with no photo in ``train``, so that the
judge owes nothing to the people the generator learnt (data split by identity).

The ``train_classifier`` stage writes ``<run_dir>/classifier/`` (the model),
``<run_dir>/metrics.json`` (held-out accuracy, ``smudge_accept`` and
``noise_accept`` on held-out real faces, and ``people``: how many identities it
learnt from and their hash, beside the generator's) and the ``classifiers``
manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.config import PipelineConfig, TrainClassifierConfig
from augment.data.errors import DatasetError
from augment.io import save_png
from augment.fs import write_json
from augment.names import child
from augment.runtime import derive_seed, resolve_device, torch_threads
from augment.sagan.data import ImageDataset, ShuffledBatchSampler, attribute_labels
from augment.sagan.judge import (GENERATOR_SPLIT, KIND, AttributeClassifier, ClassifierConfig, choose_people,
                                 held_out_smudges, identities_record)
from augment.sagan.smudge import manifest_blobs, smudge_batch
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.train_classifier")

# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #


def label_matrix(df, attributes: Sequence[str]) -> np.ndarray:
    """(N,K) float32: 1 present, 0 absent, -1 unknown."""
    return np.stack([attribute_labels(df, a) for a in attributes], axis=1).astype(np.float32)


def augment_batch(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Random horizontal flips (half the images), drawn from ``seed``.

    Only flips: faces are aligned, and random shifts of even 1/16 of the image
    slowed learning several-fold (train accuracy on SynthFaces Eyeglasses 0.72
    after 300 steps with shifts, 1.0 without).
    """
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    return torch.where(flip.reshape(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """BCE over known labels only (labels -1 are ignored); positives weighted by ``pos_weight`` (K,)."""
    known = labels >= 0
    target = labels.clamp(min=0)
    weight = known.float() * torch.where(target > 0, pos_weight, torch.ones_like(pos_weight))
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    return loss / known.sum().clamp(min=1)


@torch.no_grad()
def evaluate(model: AttributeClassifier, dataset: ImageDataset, batch_size: int = 128,
             device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """Per attribute: accuracy, balanced accuracy, count and positives over the known labels."""
    model.eval()
    probs, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size):
        probs.append(model.probabilities(x.to(device)).cpu())
        labels.append(y.reshape(len(y), -1))
    p, y = torch.cat(probs).numpy(), torch.cat(labels).numpy()
    out = {}
    for k, attr in enumerate(model.cfg.attributes):
        known = y[:, k] >= 0
        pred, true = p[known, k] > 0.5, y[known, k] > 0
        recalls = [float((pred[true == v] == v).mean()) for v in (True, False) if (true == v).any()]
        out[attr] = {
            "accuracy": float((pred == true).mean()) if known.any() else float("nan"),
            "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
            "count": int(known.sum()),
            "positives": int(true.sum()),
        }
    return out


def _smudged(x: torch.Tensor, blobs: Sequence[np.ndarray], clf_train_cfg: TrainClassifierConfig, seed: int,
             step: int) -> torch.Tensor:
    """Batch ``x`` (N,3,S,S) in [-1,1] with ``smudge_fraction`` of it patched where
    the attributes sit (``blobs[i]`` (B,4)), labels kept: dark patches, colour
    noise, or (``dark+noise``) each kind on half the fraction, drawn apart (an
    image may get both). Drawn from (seed, step), so a resumed run is exact."""
    kind, fraction = clf_train_cfg.smudge_kind, clf_train_cfg.smudge_fraction
    if kind != "dark+noise":
        return smudge_batch(x, blobs, fraction, derive_seed(seed, "train_classifier", "smudge", step), kind=kind)
    x = smudge_batch(x, blobs, fraction / 2, derive_seed(seed, "train_classifier", "smudge", step))
    return smudge_batch(x, blobs, fraction / 2, derive_seed(seed, "train_classifier", "smudge_noise", step),
                        kind="noise")


def train_classifier(dataset: ImageDataset, ccfg: ClassifierConfig, clf_train_cfg: TrainClassifierConfig, out_dir: Path,
                     *, seed: int, device: torch.device | str = "cpu",
                     blobs: Sequence[np.ndarray] | None = None) -> tuple[AttributeClassifier, int]:
    """Train (or resume) on ``dataset`` (labels (N,K) in {1,0,-1}); returns (model, step).

    ``blobs[i]`` (B,4): where ``smudge_batch`` may darken image i (``clf_train_cfg.smudge_fraction``)."""
    device = torch.device(device)
    ckpt_dir = Path(out_dir) / "checkpoints"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "train_classifier", "init"))
        model = AttributeClassifier(ccfg)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=clf_train_cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=clf_train_cfg.lr, total_steps=max(clf_train_cfg.steps, 1),
                                                pct_start=0.15)
    step = 0
    last = ckpt.latest(ckpt_dir)
    if last is not None:
        states, meta = ckpt.load(last, device=str(device), expect={"kind": KIND + "_training",
                                                                   "model_config": ccfg.to_dict()})
        model.load_state_dict(states["model"])
        opt.load_state_dict(states["opt"])
        sched.load_state_dict(states["sched"])
        step = int(meta["step"])
        log.info("[train_classifier] resuming from %s (step %d)", last, step)

    y = torch.from_numpy(dataset.labels)
    known = y >= 0
    n_pos, n_neg = ((y > 0) & known).sum(0).float(), ((y == 0) & known).sum(0).float()
    pos_weight = (n_neg / n_pos.clamp(min=1)).clamp(0.1, 10.0).to(device)
    sampler = ShuffledBatchSampler(len(dataset), clf_train_cfg.batch_size, derive_seed(seed, "train_classifier", "data"),
                                   start=step)
    batches = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=clf_train_cfg.workers,
                              persistent_workers=clf_train_cfg.workers > 0))
    model.train()
    with tqdm(total=clf_train_cfg.steps, initial=step, desc="train_classifier", unit="step", dynamic_ncols=True) as bar, \
            torch.random.fork_rng(devices=[]):
        while step < clf_train_cfg.steps:
            # Dropout draws from the global generator, whose state otherwise depends
            # on what the process did before (earlier stages, DataLoaders): seed it
            # per step, so the weights depend on (seed, step) only, resumes included.
            torch.manual_seed(derive_seed(seed, "train_classifier", "dropout", step) % 2**63)
            x, labels = next(batches)
            if clf_train_cfg.smudge_fraction > 0 and blobs is not None:
                # before the flip, so a patch sits on the landmarks it was drawn for
                x = _smudged(x, [blobs[i] for i in sampler.batch(step)], clf_train_cfg, seed, step)
            x = augment_batch(x, derive_seed(seed, "train_classifier", "augment", step)).to(device)
            loss = masked_bce(model(x), labels.reshape(len(x), -1).to(device), pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % clf_train_cfg.checkpoint_every == 0 or step == clf_train_cfg.steps:
                ckpt.save(ckpt_dir / f"step_{step:07d}",
                          {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()},
                          {"kind": KIND + "_training", "model_config": ccfg.to_dict(), "step": step, "seed": seed})
    model.eval()
    return model, step


def with_counterfactuals(train_set: ImageDataset, train_df, aligned: mf.Manifest, gt: mf.Manifest | None,
                         attributes: Sequence[str], out: Path):
    """The training set plus, for every training image with a ground-truth
    counterfactual of a classified attribute (SynthFaces), that counterfactual
    aligned by the row's own transform, with the attribute's label flipped and
    the others kept: pairs that differ in the attribute alone, so the judge
    learns the attribute and not what happens to come with it. Written once to
    ``out`` as PNGs. Returns (dataset, rows in dataset order)."""
    from augment.groundtruth import groundtruth_index, truth_for

    if gt is None:
        log.info("[train_classifier] counterfactuals: no ground truth in this pipeline (no synth stage)")
        return train_set, train_df
    paths, labels, rows = list(train_set.paths), [train_set.labels], [train_df]
    y = label_matrix(train_df, attributes)
    for k, attr in enumerate(attributes):
        index = groundtruth_index(gt, attr, set(train_df["source"]))
        extra, extra_y, extra_rows = [], [], []
        for i, row in train_df.iterrows():
            g = index.get(row["sample_id"])
            if g is None or y[i, k] < 0:
                continue
            size = int(row["width"])
            path = child(out, f"{row['sample_id']}_{attr}.png", "a training counterfactual (sample id, attribute)")
            if not path.is_file():
                cf, _ = truth_for(g, gt.root, row["transform"], size, size)
                save_png((cf * 255).round().astype(np.uint8), path)
            extra.append(path)
            flipped = y[i].copy()
            flipped[k] = 1 - flipped[k]
            extra_y.append(flipped)
            extra_rows.append(row)
        log.info("[train_classifier] %s: %d training counterfactuals added", attr, len(extra))
        if extra:
            paths += extra
            labels.append(np.stack(extra_y))
            rows.append(pd.DataFrame(extra_rows))
    return (ImageDataset(paths, train_set.size, np.concatenate(labels)),
            pd.concat(rows, ignore_index=True))


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    """train_classifier: the aligned rows of ``train_classifier.people`` (the
    ``train`` split, or the ``val`` people with no photo in it) -> one classifier,
    measured on ``val`` (or ``test``; ``test`` under ``others``) -> the
    ``classifiers`` manifest. ``metrics.json`` also says whom it learnt from
    (``people``: count and hash of the identities) and, per attribute with a
    smudge region, its ``smudge_accept`` on the held-out faces."""
    clf_train_cfg = cfg.train_classifier
    aligned: mf.Manifest = inputs.get("sagan_aligned", inputs["aligned"])  # data.sagan, else data.train
    device = resolve_device(cfg.device)
    attrs = tuple(clf_train_cfg.attributes)
    if not attrs:
        raise DatasetError("train_classifier.attributes is empty")
    ccfg = ClassifierConfig(attrs, clf_train_cfg.image_size, clf_train_cfg.width)
    where = str(aligned.file or aligned.root)
    df = aligned.df.reset_index(drop=True)
    y_all = label_matrix(df, attrs)
    train_rows, held_rows, split = choose_people(df, (y_all >= 0).any(axis=1), clf_train_cfg.people, where)

    def dataset(rows: np.ndarray) -> ImageDataset:
        return ImageDataset([aligned.root / p for p in df["path"][rows]], clf_train_cfg.image_size, y_all[rows])

    train_set = dataset(train_rows)
    if len(train_set) == 0:
        raise DatasetError(f"{where}: no training image has a label for {list(attrs)}")
    train_df = df[train_rows].reset_index(drop=True)
    gen_ids = df["identity"][df["split"] == GENERATOR_SPLIT]
    people = {"people": clf_train_cfg.people, "train_identities": identities_record(train_df["identity"]),
              "generator_identities": identities_record(gen_ids),
              "shared_identities": len(set(train_df["identity"]) & set(gen_ids))}
    log.info("[train_classifier] %d labelled training images of %d people (people: %s; %d of them among the "
             "generator's)", len(train_set), people["train_identities"]["count"], clf_train_cfg.people,
             people["shared_identities"])
    if clf_train_cfg.counterfactuals:
        train_set, train_df = with_counterfactuals(train_set, train_df, aligned, inputs.get("groundtruth"), attrs,
                                                   run_dir / "counterfactuals")
    blobs = None
    if clf_train_cfg.smudge_fraction > 0:
        blobs = manifest_blobs(aligned, train_df, attrs, clf_train_cfg.image_size)
        log.info("[train_classifier] smudged negatives (%s) on %.0f%% of each batch (%d of %d images have landmarks)",
                 clf_train_cfg.smudge_kind, 100 * clf_train_cfg.smudge_fraction, sum(len(b) > 0 for b in blobs),
                 len(blobs))
    with torch_threads(clf_train_cfg.threads):
        model, step = train_classifier(train_set, ccfg, clf_train_cfg, run_dir, seed=cfg.seed, device=device,
                                       blobs=blobs)

    held = dataset(held_rows)
    if len(held) == 0:
        log.warning("[train_classifier] no labelled '%s' image to measure the classifier on", split)
    metrics = evaluate(model, held, device=device) if len(held) else {}
    smudges = held_out_smudges(model, df[held_rows].reset_index(drop=True), aligned, attrs,
                                clf_train_cfg.image_size, cfg.seed, device) if len(held) else {}
    for attr, m in metrics.items():
        m.update(smudges.get(attr, {}))
        sm, nz = m.get("smudge_accept"), m.get("noise_accept")
        log.info("[train_classifier] %s: accuracy %.3f, balanced %.3f on %d %s images; smudge_accept %s, "
                 "noise_accept %s on %d", attr, m["accuracy"], m["balanced_accuracy"], m["count"], split,
                 "n/a" if sm is None else f"{sm:.3f}", "n/a" if nz is None else f"{nz:.3f}",
                 m.get("smudge_images", 0))
    out = run_dir / "classifier"
    ckpt.save(out, {"model": model.state_dict()},
              {"kind": KIND, "model_config": ccfg.to_dict(), "step": step, "seed": cfg.seed,
               "eval_split": split, "metrics": metrics, "people": people})
    write_json(run_dir / "metrics.json", {"split": split, "attributes": metrics, "people": people})
    row = {
        "path": "classifier",
        "classifier_id": mf.file_digest(out / ckpt.WEIGHTS)[:16],
        "attributes": list(attrs),
        "accuracy": [metrics.get(a, {}).get("accuracy") for a in attrs] if metrics else None,
        "balanced_accuracy": [metrics.get(a, {}).get("balanced_accuracy") for a in attrs] if metrics else None,
        "eval_split": split if metrics else None,
        "eval_images": len(held),
        "image_size": clf_train_cfg.image_size,
        "step": step,
    }
    return {"classifiers": mf.Manifest("classifiers", mf.frame("classifiers", [row]), run_dir)}
