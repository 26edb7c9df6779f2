"""``augment edit``: change one attribute in a user's own photos with a trained generator
(by default the one shipped with the package for that attribute, ``augment.pretrained``).

Per photo:

1. decode it (EXIF orientation applied) and detect the faces with MTCNN; keep
   one (``select``: the largest by default). A photo without a usable face is
   listed in ``rejects.parquet`` with the reason, not edited.
2. warp the face onto the template the generator was trained on (its
   metadata records template and crop size), exactly as the align stage does;
3. run SaGAN on the crop: the attention mask b = F_a(x) once, then
   F_m(x, c) per target value (at the generator's size, upsampled to the crop);
4. paste back: F_m's output and b are warped into the photo's frame with the
   inverse similarity, and the photo becomes ``b * edit + (1 - b) * photo``
   (b tapered to 0 over the crop's outer few pixels, so no seam shows where
   the square ends).
   Where b is 0 (everything outside the pasted face region) the output pixel
   is the input pixel, bit for bit; the result is written as PNG so nothing
   is lost to a second JPEG encoding.

Outputs under OUT (``<name>`` is the photo's path below the folder given, or
its file name, with ``/`` turned into ``__``):

- ``edited/<name>.<Attribute>=<v>.png``: the full-size photo with the edit;
- ``aligned/<name>.png``: the aligned crop; ``mask/<name>.<Attribute>.png``:
  b at the crop size (0..255);
- ``edits.parquet`` (the edited photos, an images manifest: each photo its own
  identity), ``aligned.parquet`` (the crops), ``rejects.parquet``, and
  ``index.csv`` naming every file written per edit.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from augment import manifest as mf
from augment import trained
from augment.align import detect as det
from augment.align.templates import template as template_points
from augment.align.warp import similarity, warp
from augment.config import ConfigError
from augment.data.celeba import IMAGE_EXTS
from augment.data.images import ImageDecodeError, decode
from augment.io import cv2_bytes
from augment.fs import write_atomic, write_bytes
from augment.sagan.apply import attend_and_manipulate, edit_id, strengthened
from augment.names import component

log = logging.getLogger("augment.photo_edit")

SOURCE = "photo"


@dataclass
class Photo:
    """One input photo: its file and the unique name its outputs get."""

    file: Path
    name: str


@dataclass
class EditResult:
    edits: mf.Manifest
    aligned: mf.Manifest
    rejects: mf.Manifest
    index: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings for the user (a generator out of its domain)


def collect_photos(inputs: Iterable[Path | str]) -> list[Photo]:
    """Photos from files and folders (a folder: every image below it, sorted), with unique names."""
    photos: list[Photo] = []
    for given in inputs:
        p = Path(given)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise ConfigError(f"{p}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
            photos += [Photo(f, f.relative_to(p).with_suffix("").as_posix().replace("/", "__")) for f in files]
        elif p.is_file():
            photos.append(Photo(p, p.stem))
        else:
            raise ConfigError(f"{p}: no such file or folder")
    seen: dict[str, int] = {}
    for ph in photos:  # the same name from two inputs: number the later ones
        k = seen.get(ph.name, 0)
        seen[ph.name] = k + 1
        if k:
            ph.name = f"{ph.name}-{k + 1}"
    return photos


def values_of(value: str) -> list[int]:
    """``0`` | ``1`` | ``both`` -> target values (1 first, as the edit stage orders them)."""
    if value == "both":
        return [1, 0]
    if value in ("0", "1"):
        return [int(value)]
    raise ConfigError(f"--value must be 0, 1 or both, got {value!r}")


def edge_taper(size: int) -> np.ndarray:
    """(S,S) float32 weights: 1 inside, falling linearly to 0 over the crop's outer
    ``max(2, S // 32)`` px, so that a mask still open at the crop's edge does not
    leave a hard seam where the pasted square ends in the photo."""
    band = max(2, size // 32)
    ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5) / band, 0.0, 1.0)
    return np.minimum.outer(ramp, ramp).astype(np.float32)


def paste(photo: np.ndarray, m: np.ndarray, edit: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend an edited crop back into the photo it was warped from.

    photo: (H,W,3) uint8; m: the 2x3 photo -> crop transform; edit: (S,S,3)
    float32 in [0,255]; mask: (S,S) float32 in [0,1] (tapered at the crop's
    border, see ``edge_taper``). Returns (the edited photo (H,W,3) uint8, the
    blend weight in the photo's frame (H,W) float32). Where that weight is 0
    (everywhere outside the pasted square) the photo is returned unchanged.
    """
    h, w = photo.shape[:2]
    inv = cv2.invertAffineTransform(m)
    flags = cv2.INTER_LINEAR
    mask = mask * edge_taper(mask.shape[0])
    edit_full = cv2.warpAffine(edit, inv, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask_full = cv2.warpAffine(mask, inv, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask_full = np.clip(mask_full, 0.0, 1.0)
    out = photo.astype(np.float32)
    region = mask_full > 0
    b = mask_full[region][:, None]
    out[region] = b * edit_full[region] + (1.0 - b) * out[region]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask_full


def _write_png(arr: np.ndarray, path: Path) -> str:
    """Write RGB (or gray) uint8 as PNG (OpenCV, as the align stage) atomically; returns the sha256 of the bytes."""
    data = cv2_bytes(arr, "png")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _crop_tensor(crop: np.ndarray, device):
    import torch

    return torch.from_numpy(crop).to(device).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def _alignment(generators: mf.Manifest, row, template: str | None, crop_size: int | None) -> tuple[str, int]:
    """The template and crop size to align with: the generator's record; the flags only
    where the generator predates the record (and then both are required)."""
    rec = trained.alignment(generators, row)
    if rec is not None:
        given = (template or rec["template"], crop_size or rec["size"])
        if given != (rec["template"], rec["size"]):
            raise ConfigError(
                f"--template {given[0]} --crop-size {given[1]}: the generator {generators.root / row['path']} "
                f"was trained on template '{rec['template']}' at {rec['size']} px"
            )
        return rec["template"], rec["size"]
    if not template or not crop_size:
        raise ConfigError(
            f"{generators.root / row['path']}: the generator's metadata does not record the alignment it was "
            "trained on (made before augment recorded it); pass --template and --crop-size as its training "
            "pipeline's align.template and align.size"
        )
    return template, crop_size


def edit_photos(
    inputs: Sequence[Path | str], generators_path: Path | str | None, attribute: str, value: str, out: Path | str,
    *, template: str | None = None, crop_size: int | None = None, select: str = "largest",
    min_prob: float = 0.9, min_face: int = 20, device: str = "cpu", progress: bool | None = None,
    strength: float = 1.0,
) -> EditResult:
    """Edit ``attribute`` to ``value`` (0, 1 or both) in every photo of ``inputs``; write under ``out``.
    ``generators_path``: a run, manifest or checkpoint (``augment.trained.resolve``);
    None or ``pretrained``: the generator shipped for ``attribute`` (a ConfigError
    naming it and what is shipped when there is none).
    ``strength``: the attention mask scaled by it and clipped at 1 (1 = as trained)."""
    import torch
    from tqdm import tqdm

    from augment.pretrained import KEYWORD, is_keyword
    from augment.sagan.generators import out_of_domain

    out = Path(out)
    targets = values_of(value)
    photos = collect_photos(inputs)
    if generators_path is None or is_keyword(str(generators_path)):
        gens = trained.shipped(str(generators_path or KEYWORD), "--generators" if generators_path else "", attribute)
    else:
        gens = trained.resolve(generators_path, "generators", "--generators")
    row = trained.pick(gens, attribute)
    tname, size = _alignment(gens, row, template, crop_size)
    dst = template_points(tname, size)
    G, gmeta = trained.load_generator(gens, row, device)
    notes = [n for n in (out_of_domain(gmeta, "photos"),) if n]
    gsize, gid = int(row["image_size"]), str(row["generator_id"])

    edits, crops, rejects, index = [], [], [], []
    quiet = len(photos) < 2 if progress is None else not progress  # a bar for folders, not for one photo
    bar = tqdm(photos, desc="edit photos", unit="photo", disable=quiet)
    for ident, ph in enumerate(bar):
        sid = mf.sample_id(SOURCE, str(ph.file.resolve()))
        try:
            img = decode(ph.file)
        except ImageDecodeError as e:
            rejects.append({"sample_id": sid, "path": str(ph.file), "reason": e.reason, "detail": e.detail})
            continue
        pixels = img.pixels
        h, w = pixels.shape[:2]
        found = det.detect([pixels], min_face=min_face, device=device)[0]
        if isinstance(found, Exception):
            rejects.append({"sample_id": sid, "path": str(ph.file), "reason": "detector_error",
                            "detail": f"MTCNN failed: {found}"})
            continue
        choice = det.choose(found, w, h, select=select, min_prob=min_prob, min_face=min_face)
        if not choice.faces:
            rejects.append({"sample_id": sid, "path": str(ph.file), "reason": choice.reason, "detail": choice.detail})
            continue
        face = choice.faces[0]
        m = similarity(face.points, dst)
        crop = warp(pixels, m, size)
        crop_rel = "aligned/" + component(f"{ph.name}.png", f"{ph.file}: the aligned crop's name")
        common = {"identity": ident, "identity_name": ph.name, "split": "train", "source": SOURCE,
                  "landmarks": [float(v) for v in face.points.reshape(-1)],
                  "bbox": [float(v) for v in face.box], "det_prob": float(face.prob),
                  "transform": [float(v) for v in m.reshape(-1)]}
        crops.append({"sample_id": sid, "path": crop_rel, **common, "width": size, "height": size,
                      "sha256": _write_png(crop, out / crop_rel)})
        with torch.inference_mode():
            masks, x_a = attend_and_manipulate(G, gsize, _crop_tensor(crop, device), targets)
        per_value = bool(getattr(G, "mask_sees_change", False))  # one mask per requested value
        mask_rel = None
        for v in targets:
            mask_np = strengthened(masks[v], strength)[0, 0].float().cpu().numpy()
            if mask_rel is None or per_value:
                name = f"{ph.name}.{attribute}={v}.png" if per_value else f"{ph.name}.{attribute}.png"
                mask_rel = "mask/" + component(name, f"{ph.file}: the mask's name")
                _write_png(np.rint(mask_np * 255).astype(np.uint8), out / mask_rel)
            edit_np = ((x_a[v][0].float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).cpu().numpy()
            result, mask_full = paste(pixels, m, np.ascontiguousarray(edit_np, dtype=np.float32), mask_np)
            rel = "edited/" + component(f"{ph.name}.{attribute}={v}.png", f"{ph.file}: the edited photo's name")
            digest = _write_png(result, out / rel)
            eid = edit_id(sid, attribute, v)
            edits.append({"sample_id": eid, "path": rel, **common, "parent_id": sid, "attribute": attribute,
                          "target_value": v, "generator_id": gid, "mask_area": float(mask_np.mean()),
                          "width": w, "height": h, "sha256": digest})
            index.append({"input": str(ph.file), "attribute": attribute, "value": v, "edited": rel,
                          "aligned": crop_rel, "mask": mask_rel, "mask_area": round(float(mask_np.mean()), 6),
                          "pasted_pixels": int((mask_full > 0).sum())})
    bar.close()
    extra = {"generator": str(gens.root / row["path"]), "generator_id": gid, "template": tname, "size": size,
             "attribute": attribute, "values": targets, "photos": len(photos)}
    result = EditResult(
        mf.Manifest("images", mf.frame("images", edits), out, {"extra": extra}),
        mf.Manifest("images", mf.frame("images", crops), out, {"extra": {"template": tname, "size": size}}),
        mf.Manifest("rejects", mf.frame("rejects", rejects), out, {"extra": {"role": "photos"}}),
        index,
        notes,
    )
    out.mkdir(parents=True, exist_ok=True)
    mf.write(result.edits, out / "edits.parquet")
    mf.write(result.aligned, out / "aligned.parquet")
    mf.write(result.rejects, out / "rejects.parquet")
    fields = ["input", "attribute", "value", "edited", "aligned", "mask", "mask_area", "pasted_pixels"]

    def write_index(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=fields)
            wr.writeheader()
            wr.writerows(index)

    write_atomic(out / "index.csv", write_index)
    return result
