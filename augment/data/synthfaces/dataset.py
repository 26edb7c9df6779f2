"""Render a whole SynthFaces dataset: resumable, parallel, byte-reproducible.

Work is cut into chunks of a few identities. A chunk renders its photos (and,
for the CelebA test split and all of LFW, every counterfactual and its mask),
writes the files, then records its metadata in ``OUT/.synth_progress/``; a
rerun with the same settings skips recorded chunks. Once all chunks are done,
the text files, pairs and the ground-truth index are written, and
``OUT/synthfaces.json`` last: its presence with the same settings means the
dataset is complete.

Every random draw is derived from (seed, part, identity, image), so the output
does not depend on the chunking, the number of workers or the order of work.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from augment import __version__
from augment import manifest as mf
from augment.data.synthfaces import layout
from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
from augment.data.synthfaces.render import BatchRender
from augment.data.synthfaces.settings import (  # noqa: F401 (re-exported: the package imports them from here)
    FORMAT_VERSION, NOT_RENDERING, OPTIONAL_DEFAULTS, SPLIT_CODES, SettingError, Settings, validate,
)  # fmt: skip
from augment.fs import write_json

STAMP = "synthfaces.json"
PROGRESS = ".synth_progress"
LFW_SIZE = 250
CHUNK = 4  # identities per unit of work (and of resumption)


# --------------------------------------------------------------------------- plan


def celeba_numbers(s: Settings) -> dict[tuple[int, int], int]:
    """{(identity index, photo index): CelebA file number}: train, val, then test photos."""
    order = sorted(((sp, k, j) for k, sp in enumerate(layout.splits(s.identities))
                    for j in range(s.images_per_identity)))
    return {(k, j): n + 1 for n, (_, k, j) in enumerate(order)}


def chunks(s: Settings) -> list[tuple[str, list[int]]]:
    units = [("celeba", list(range(a, min(a + CHUNK, s.identities)))) for a in range(0, s.identities, CHUNK)]
    units += [("lfw", list(range(a, min(a + CHUNK, s.lfw_identities)))) for a in range(0, s.lfw_identities, CHUNK)]
    return units


# --------------------------------------------------------------------------- rendering


def _write_groundtruth(write: layout.Writer, part: str, image: str, source: np.ndarray, counterfactuals: dict,
                       s: Settings) -> list[dict]:
    """Counterfactual + mask for every attribute of one photo; returns index rows.

    ``source`` holds the stored pixels of the photo (decoded, for JPEG). The
    mask marks the pixels whose stored values differ, so outside it the two
    files are identical even after lossy compression.
    """
    rows = []
    for a, img in counterfactuals.items():
        data = layout.encode(img, s.jpeg_quality)
        cf_rel, mask_rel = layout.groundtruth_paths(part, image, a, s.ext)
        stored = layout.decode(data) if s.jpeg_quality > 0 else img
        write(cf_rel, data)
        write(mask_rel, layout.encode_mask(layout.changed(source, stored)))
        rows.append({"image": image, "attribute": a, "counterfactual": cf_rel, "mask": mask_rel})
    return rows


def batch_size(size: int) -> int:
    """Photos drawn together: enough to spread NumPy's per-call cost, few enough
    for the working arrays to stay in cache: about 200k pixels a batch (measured
    on one core: 12 at 128 px, 3 at 250 px, 48 at 64 px)."""
    return int(min(48, max(1, round(12 * (128 / size) ** 2))))


def render_chunk(out: Path, s: Settings, part: str, idents: list[int], names: list[str]) -> dict:
    """Render and write one chunk (a few identities); returns its metadata (JSON-able).

    The chunk's photos are drawn in batches of ``batch_size`` (photos needing
    ground truth apart from the others, so only they pay for counterfactuals).
    A photo's pixels do not depend on its batch.
    """
    numbers = celeba_numbers(s) if part == "celeba" else None
    split_of = layout.splits(s.identities)
    size = s.size if part == "celeba" else LFW_SIZE
    count = s.images_per_identity if part == "celeba" else s.lfw_images_per_identity
    gt_codes = {SPLIT_CODES[x] for x in s.groundtruth_splits}
    habit = s.habits(part)
    photos = {True: [], False: []}  # with ground truth or not -> [(identity index, photo index, Identity, Shot)]
    for k in idents:
        ident = sample_identity(s.seed, part, k, s.habit_prior_by_attribute)
        with_gt = part == "lfw" or split_of[k] in gt_codes
        for j in range(count):
            shot = sample_shot(s.seed, part, ident, k, j, (size, size), habit)
            photos[with_gt].append((k, j, ident, shot))
    meta: dict = {"images": [], "groundtruth": []}
    write = layout.Writer(out)
    step = batch_size(size)
    for with_gt, todo in photos.items():
        for b0 in range(0, len(todo), step):
            batch = todo[b0:b0 + step]
            render = BatchRender([(ident, shot) for _, _, ident, shot in batch], size, size)
            pixels, landmarks = render.images(last=not with_gt), render.landmarks()
            toggled = {a: render.images(render.toggled(a), last=a == ATTRIBUTES[-1])
                       for a in ATTRIBUTES} if with_gt else {}
            for n, (k, j, _, shot) in enumerate(batch):
                if part == "celeba":
                    file = layout.celeba_name(numbers[(k, j)], s.ext)
                    rel = f"{layout.CELEBA_DIR}/{layout.CELEBA_IMAGES}/{file}"
                    row = {"file": file, "identity": k + 1, "split": split_of[k]}
                else:
                    file = layout.lfw_name(names[k], j + 1, s.ext)
                    rel = f"{layout.LFW_DIR}/{file}"
                    row = {"file": file, "name": names[k], "index": j + 1}
                data = layout.encode(pixels[n], s.jpeg_quality)
                write(rel, data)
                row.update(attrs=dict(shot.attrs), landmarks=[round(float(x), 2) for x in landmarks[n]])
                meta["images"].append(row)
                if with_gt:
                    stored = layout.decode(data) if s.jpeg_quality > 0 else pixels[n]
                    cfs = {a: imgs[n] for a, imgs in toggled.items()}
                    meta["groundtruth"] += _write_groundtruth(write, part, rel, stored, cfs, s)
    return meta


# --------------------------------------------------------------------------- the whole dataset


def read_stamp(out: Path) -> dict | None:
    try:
        return json.loads((Path(out) / STAMP).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(out: Path, s: Settings) -> bool:
    stamp = read_stamp(out)
    return stamp is not None and stamp.get("settings") == s.as_dict()


def check_out(out: Path) -> None:
    """Refuse a folder that cannot be written, or that is not empty and holds no
    SynthFaces dataset (it would be mixed with, or clear, someone's files)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingError("out", f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if read_stamp(out) is None and not (out / PROGRESS).is_dir():
            raise SettingError("out", f"{out} is not empty and holds no SynthFaces dataset; "
                                      "choose an empty or new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SettingError("out", f"cannot write to {out}: {e.strerror or e}") from None


def _prepare(out: Path, s: Settings) -> Path:
    """Clear a dataset made with other settings; returns the progress folder."""
    progress = out / PROGRESS
    want = json.dumps(s.as_dict(), sort_keys=True)
    have = (progress / "settings.json").read_text() if (progress / "settings.json").is_file() else None
    if have != want:
        for name in (layout.CELEBA_DIR, layout.LFW_DIR, layout.GROUNDTRUTH_DIR, PROGRESS, STAMP):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        progress.mkdir(parents=True)
        (progress / "settings.json").write_text(want)
    return progress


def synthesize(out: Path | str, s: Settings, workers: int = 1, progress: bool = True) -> mf.Manifest:
    """Write the dataset to ``out`` (skipped when complete with the same settings).

    Returns the ground-truth manifest (root ``out``).
    """
    from joblib import Parallel, delayed
    from tqdm import tqdm

    validate(s)
    out = Path(out)
    if is_complete(out, s):
        return mf.read(out / layout.GROUNDTRUTH_DIR / layout.INDEX, "groundtruth")
    check_out(out)
    prog = _prepare(out, s)
    names = layout.person_names(s.seed, s.lfw_identities)
    units = chunks(s)
    todo = [(n, u) for n, u in enumerate(units) if not (prog / f"chunk_{n:05d}.json").is_file()]
    per_id = {"celeba": s.images_per_identity, "lfw": s.lfw_images_per_identity}
    total = sum(per_id[p] * len(ids) for p, ids in units)
    done = total - sum(per_id[p] * len(ids) for _, (p, ids) in todo)
    bar = tqdm(total=total, initial=done, unit="img", desc="synth", disable=not progress)

    def work(n: int, part: str, ids: list[int]) -> tuple[int, int]:
        meta = render_chunk(out, s, part, ids, names)
        write_json(prog / f"chunk_{n:05d}.json", meta, indent=None, sort_keys=False)
        return n, per_id[part] * len(ids)

    if workers > 1 and len(todo) > 1:
        jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(
            delayed(work)(n, p, ids) for n, (p, ids) in todo
        )
    else:
        jobs = (work(n, p, ids) for n, (p, ids) in todo)
    for _, count in jobs:
        bar.update(count)
    bar.close()
    return _finish(out, s, prog, units)


def _finish(out: Path, s: Settings, prog: Path, units: list) -> mf.Manifest:
    celeba_rows, lfw_rows, gt_rows = [], [], []
    for n, (part, _) in enumerate(units):
        meta = json.loads((prog / f"chunk_{n:05d}.json").read_text())
        (celeba_rows if part == "celeba" else lfw_rows).extend(meta["images"])
        gt_rows.extend(meta["groundtruth"])
    layout.write_celeba_files(out / layout.CELEBA_DIR, celeba_rows)
    lfw_rows.sort(key=lambda r: r["file"])
    layout.write_landmarks(out / layout.LFW_DIR / layout.LFW_LANDMARKS, [(r["file"], r["landmarks"]) for r in lfw_rows])
    layout.write_attribute_csv(out / layout.LFW_DIR / layout.LFW_ATTRIBUTES, [(r["file"], r["attrs"]) for r in lfw_rows])
    by_person: dict[str, list[dict]] = {}
    for r in lfw_rows:
        by_person.setdefault(r["name"], []).append(r)
    n, pairs = layout.make_pairs(s.seed, by_person)
    layout.write_pairs(out / layout.LFW_DIR / layout.LFW_PAIRS, n, pairs)
    gt = pd.DataFrame(sorted(gt_rows, key=lambda r: (r["image"], r["attribute"])),
                      columns=["image", "attribute", "counterfactual", "mask"])
    same = [p for _, is_same, p in pairs if is_same]
    attrs = {(r["name"], r["index"]): r["attrs"] for r in lfw_rows}
    differ = sum(attrs[(a, i)] != attrs[(b, j)] for a, i, b, j in same)
    extra = {"lfw_pairs_per_fold": n, "same_pairs_differing": differ, "same_pairs": len(same)}
    manifest = mf.Manifest("groundtruth", gt, out, {"extra": extra})
    mf.write(manifest, out / layout.GROUNDTRUTH_DIR / layout.INDEX)
    stamp = {"settings": s.as_dict(), "version": __version__, "images": len(celeba_rows),
             "lfw_images": len(lfw_rows), "groundtruth_rows": len(gt), **extra}
    write_json(out / STAMP, stamp, newline=True)  # last: its presence means the dataset is complete
    shutil.rmtree(prog)
    return mf.read(out / layout.GROUNDTRUTH_DIR / layout.INDEX, "groundtruth")
