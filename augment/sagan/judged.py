"""eval_sagan's identity figures by a judge that owes nothing to the generator.

dlib's pretrained face recognizer (``augment.judges.identity``; the optional
``judges`` extra) describes each held-out aligned crop and its edit, both at
the aligned crop's size: the edit is made as the edit stage makes it
(``augment.sagan.apply.edit_batch``: the generator's output blended into the
full-resolution crop), each image edited to the other value of its label
(``add``: 0 -> 1, ``remove``: 1 -> 0). Per direction (and, at the top level
of an attribute's metrics, over the images of both):

- ``id_distance``, ``id_distance_p95``: mean and 95th percentile of the dlib
  distance between each source crop and its edit;
- ``id_kept``: the fraction below dlib's threshold (0.6: the same person);
- ``id_distance_images``: how many edits were described (``id_images`` counts
  those of the run's own recognizer, ``augment.sagan.identity``);
- on SynthFaces, the same for the exact counterfactual (the oracle,
  ``augment.groundtruth.perfect_edit``): ``id_distance_oracle``,
  ``id_distance_p95_oracle``, ``id_kept_oracle`` (a perfect edit changes the
  face a little too; its distance is what an editor can hope for), over
  ``id_distance_oracle_images``.

``id_reference`` puts those distances on the judge's scale, measured on the
same aligned images: ``same_person`` (mean over pairs of two photos of one
identity), ``different_people`` (pairs of two identities), ``noise_floor`` (each
image against itself shifted 2 px), with the number of pairs or images each
is the mean over. Pairs are drawn (at most ``REFERENCE_PAIRS`` of each kind,
deterministically from the run's seed) among the first ``REFERENCE_IMAGES``
images of the split eval_sagan judges (labelled or not); for a kind with no
pair there (a split of one person), ``REFERENCE_EXTRA`` images of other
splits join them (whole identities, drawn from the seed), and ``<kind>_from``
says which images the pairs came from.

dlib takes ~60-120 ms per face on one CPU thread, so the number of faces it
describes is bounded: per attribute the first ``eval_sagan.id_per_direction``
rows (0: all) of each direction among those eval_sagan judges (themselves capped by
``eval_sagan.max_images``), their oracle twins; once per run the first
``REFERENCE_IMAGES`` rows of the split for the pairs (``NOISE_IMAGES`` of them
for the noise floor), each face described once. The reference's bounds are
module constants, not config keys.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from augment import manifest as mf
from augment.config import EvalSaganConfig
from augment.groundtruth import groundtruth_index, perfect_edit
from augment.io import read_rgb, to_tensor, to_uint8
from augment.judges import identity as idj
from augment.judges.regions import REGIONS as REGION_BOXES
from augment.sagan.apply import EditModels, edit_batch
from augment.sagan.data import attribute_labels

log = logging.getLogger("augment.eval_sagan")

REFERENCE_IMAGES = 128  # id_reference: the first images of the split its pairs are drawn among
REFERENCE_PAIRS = 200  # pairs of each kind of id_reference
NOISE_IMAGES = 64  # images of the noise floor (each described twice)
REFERENCE_EXTRA = 16  # images of other splits added when the judged ones lack a kind of pair
EXHAUSTIVE_PAIRS = 200_000  # up to this many candidate pairs, enumerate them; above, draw them at random

CLASSIFIER = "the project's attribute classifier (train_classifier; edit_success, truth_success, smudge_accept)"
DLIB = ("dlib's pretrained recognizer (dlib_face_recognition_resnet_model_v1, 99.38 % on LFW; id_distance, "
        "id_kept, id_reference)")
RUN_RECOGNIZER = "the run's own baseline recognizer (train_recognition; id_preserved, id_similarity)"
REGIONS = ("template regions, no model (augment.judges.regions on the {template} template; outside_change_region, "
           "mask_in_region)")
COLOUR = "the input's own colours, no model (augment.judges.colour; novel_colour)"
NO_TEMPLATE = "the aligned manifest names no alignment template (made by the align stage, its meta says which)"


def heldout_rows(aligned: mf.Manifest, split: str, attribute: str, max_images: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows eval_sagan judges: ``split``'s rows labelled for ``attribute``, the
    first ``max_images`` (0: all) -> (rows, their 0/1 labels)."""
    df = aligned.df[aligned.df["split"] == split].reset_index(drop=True)
    labels = attribute_labels(df, attribute)
    df, labels = df[labels >= 0].reset_index(drop=True), labels[labels >= 0]
    if max_images > 0:
        df, labels = df.iloc[:max_images].reset_index(drop=True), labels[:max_images]
    return df, labels


def locality_problem(attribute: str, template: str | None) -> str | None:
    """None when ``attribute`` has a template region on ``template`` crops, else why not."""
    if template is None:
        return NO_TEMPLATE
    if attribute not in REGION_BOXES:
        return f"no template region for {attribute} (augment.judges.regions knows {', '.join(REGION_BOXES)})"
    return None


def identity_problem(template: str | None) -> str | None:
    """None when the identity judge can run on this run's crops, else the one line why not."""
    return idj.missing() or (None if template else NO_TEMPLATE)


def merge(result: dict, figures: dict, reference: dict) -> None:
    """Put ``IdentityFigures.edits``' figures into eval_sagan's ``result``: "all" at
    its top level, "add" and "remove" into its direction blocks; the reference beside."""
    result.update(figures["all"])
    for direction in ("add", "remove"):
        result.setdefault(direction, {}).update(figures[direction])
    result["id_reference"] = reference


def judges_block(identity: str | None, template: str | None, locality: str | None, run_recognizer: bool) -> dict:
    """Which judge made which figure: ``identity`` / ``locality`` None when that judge
    ran, else the line saying why it did not."""
    out = {"attribute": CLASSIFIER,
           "identity": DLIB if identity is None else
           f"{'unavailable' if identity == NO_TEMPLATE else 'not installed'}: {identity}",
           "locality": REGIONS.format(template=template) if locality is None else f"unavailable: {locality}",
           "colour": COLOUR}
    if run_recognizer:
        out["identity_run"] = RUN_RECOGNIZER
    return out


def _identity_codes(rows: pd.DataFrame) -> np.ndarray:
    """Per row an integer identity code, -1 where the identity is unknown."""
    if "identity" not in rows:
        return np.full(len(rows), -1)
    values = rows["identity"].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes)


def sample_pairs(codes: np.ndarray, same: bool, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``k`` distinct pairs (i < j) of rows with known identities, of one
    identity (``same``) or two; deterministic for a given ``rng`` state."""
    known = np.flatnonzero(codes >= 0)
    n = len(known)
    if n * (n - 1) // 2 <= EXHAUSTIVE_PAIRS:
        i, j = np.triu_indices(n, 1)
        keep = (codes[known[i]] == codes[known[j]]) == same
        cand = np.stack([known[i][keep], known[j][keep]], 1)
        pick = cand[np.sort(rng.choice(len(cand), min(k, len(cand)), replace=False))] if len(cand) else cand
        return [(int(a), int(b)) for a, b in pick]
    # too many to list: draw a row, then a partner of its identity (same) or of another
    order = known[np.argsort(codes[known], kind="stable")]
    sorted_codes = codes[order]
    start = np.searchsorted(sorted_codes, sorted_codes, side="left")
    size = np.searchsorted(sorted_codes, sorted_codes, side="right") - start
    eligible = np.flatnonzero(size >= 2) if same else np.flatnonzero(size < n)
    found: dict[tuple[int, int], None] = {}  # in the order drawn
    for _ in range(50):
        if not eligible.size or len(found) >= k:
            break
        p = rng.choice(eligible, 2 * k)
        if same:  # another row of p's identity
            r = (p - start[p] + 1 + rng.integers(0, size[p] - 1)) % size[p]
            q = start[p] + r
        else:  # a row outside p's identity
            r = rng.integers(0, n - size[p])
            q = np.where(r < start[p], r, r + size[p])
        for x, y in zip(order[p], order[q]):
            found.setdefault((int(min(x, y)), int(max(x, y))))
    return list(found)[:k]


class IdentityFigures:
    """dlib's descriptors of one run's aligned crops, each computed once; the
    reference scale and the per-attribute distances of the module docstring."""

    def __init__(self, template: str, aligned: mf.Manifest, device, batch_size: int = 32,
                 per_direction: int = EvalSaganConfig.id_per_direction) -> None:
        """``per_direction``: edits described per direction (0: all)."""
        self.judge = idj.IdentityJudge(template)
        self.aligned, self.root = aligned, Path(aligned.root)
        self.device, self.batch_size = device, batch_size
        self.per_direction = per_direction
        self._cache: dict[str, np.ndarray] = {}
        self.described = 0  # descriptors computed, for the log

    def _describe(self, crops: np.ndarray) -> np.ndarray:
        self.described += len(crops)
        return self.judge.descriptors(crops)

    def sources(self, paths) -> np.ndarray:
        """(N,128) descriptors of the aligned crops at ``paths`` (under the manifest's root)."""
        paths = list(paths)
        todo = [p for p in dict.fromkeys(paths) if p not in self._cache]
        for b in range(0, len(todo), self.batch_size):
            part = todo[b : b + self.batch_size]
            for p, d in zip(part, self._describe(np.stack([read_rgb(self.root / p) for p in part]))):
                self._cache[p] = d
        return np.stack([self._cache[p] for p in paths]) if paths else np.zeros((0, 128), np.float32)

    def reference(self, rows: pd.DataFrame, split: str, seed: int) -> dict:
        """``id_reference`` on ``rows`` (the judged images), widened to every split of
        the aligned manifest for a kind of pair they lack."""
        rows = rows.iloc[:REFERENCE_IMAGES].reset_index(drop=True)
        rng = np.random.default_rng(seed)
        out: dict = {}
        wider = None  # the judged rows and REFERENCE_EXTRA rows of other splits, made when needed
        for key, same in (("same_person", True), ("different_people", False)):
            where, pairs = rows, sample_pairs(_identity_codes(rows), same, REFERENCE_PAIRS, rng)
            if not pairs:
                if wider is None:
                    wider = pd.concat([rows, self._extra_rows(rows, rng)], ignore_index=True)
                where, pairs = wider, sample_pairs(_identity_codes(wider), same, REFERENCE_PAIRS, rng)
            if pairs:
                a = self.sources(where["path"].iloc[[p[0] for p in pairs]])
                b = self.sources(where["path"].iloc[[p[1] for p in pairs]])
                out[key] = float(idj.distances(a, b).mean())
            else:
                out[key] = None
            out[f"{key}_pairs"] = len(pairs)
            out[f"{key}_from"] = (f"{split} ({len(rows)} images)" if where is rows else
                                  f"{split} and {len(where) - len(rows)} images of other splits")
        paths = list(rows["path"].iloc[:NOISE_IMAGES])
        out["noise_floor"] = None
        if paths:
            crops = np.stack([read_rgb(self.root / p) for p in paths])
            out["noise_floor"] = float(idj.distances(self.sources(paths), self._describe(idj.shifted(crops))).mean())
        out["noise_floor_images"] = len(paths)
        out["threshold"] = idj.THRESHOLD
        return out

    def _extra_rows(self, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Up to ``REFERENCE_EXTRA`` rows of the aligned manifest outside ``rows``, of
        known identities drawn at random, up to 4 photos of each (so that both kinds
        of pair can be made), for a split that lacks one."""
        others = self.aligned.df[~self.aligned.df["path"].isin(set(rows["path"]))].reset_index(drop=True)
        codes = _identity_codes(others)
        picked: list[int] = []
        for c in rng.permutation(np.unique(codes[codes >= 0])):
            picked += list(np.flatnonzero(codes == c)[:4])
            if len(picked) >= REFERENCE_EXTRA:
                break
        return others.iloc[picked[:REFERENCE_EXTRA]]

    @torch.no_grad()
    def edits(self, generator, generator_size: int, attribute: str, rows: pd.DataFrame, labels: np.ndarray,
              gt: mf.Manifest | None) -> dict:
        """{"add": {...}, "remove": {...}, "all": {...}} figures of the module docstring
        over ``rows`` (labelled 0/1 by ``labels``), each edited to the other value."""
        labels = np.asarray(labels)
        cap = self.per_direction or None  # 0: every edit
        keep = np.sort(np.concatenate([np.flatnonzero(labels == v)[:cap] for v in (0, 1)]))
        rows, labels = rows.iloc[keep].reset_index(drop=True), labels[keep]
        truths = groundtruth_index(gt, attribute, set(rows["source"].dropna())) if gt is not None else {}
        models = EditModels(attribute, "", generator, generator_size)
        dist: list[np.ndarray] = []
        oracle = np.full(len(rows), np.nan)
        for b in range(0, len(rows), self.batch_size):
            part = rows.iloc[b : b + self.batch_size]
            targets = 1 - labels[b : b + self.batch_size]
            crops = np.stack([read_rgb(self.root / p) for p in part["path"]])
            x = to_tensor(crops).to(self.device)
            _, out = edit_batch(models, x, sorted(set(targets.tolist())))  # one attention pass
            t = torch.as_tensor(targets, device=x.device)
            edited = torch.empty_like(x)
            for v, xe in out.items():  # each image keeps the edit to its own target
                edited[t == v] = xe[t == v]
            src = self.sources(part["path"])
            dist.append(idj.distances(src, self._describe(to_uint8(edited))))
            have = [i for i, sid in enumerate(part["sample_id"]) if sid in truths]
            if have:
                cfs = np.stack([perfect_edit(part.iloc[i], self.root, truths[part["sample_id"].iloc[i]], Path(gt.root),
                                             int(targets[i]), int(1 - targets[i]))[0] for i in have])
                oracle[[b + i for i in have]] = idj.distances(src[have], self._describe(cfs))
        d = np.concatenate(dist) if dist else np.zeros(0)
        directions = {"add": labels == 0, "remove": labels == 1, "all": np.ones(len(rows), bool)}
        return {k: {**_figures(d[m]), **{f"{key}_oracle": v for key, v in _figures(oracle[m]).items()
                                         if key != "id_distance_images"},
                    "id_distance_oracle_images": int(np.isfinite(oracle[m]).sum())}
                for k, m in directions.items()}


def judge_identity(figures: IdentityFigures, result: dict, reference: dict | None, generator, generator_size: int,
                   attribute: str, gt: mf.Manifest | None, split: str, max_images: int, seed: int) -> dict:
    """dlib's identity figures of one generator into eval_sagan's ``result``, on the
    rows it judged (``heldout_rows``); returns the run's ``id_reference``, measured
    on the first call (the ``split``'s images, from ``seed``) and passed back after."""
    aligned = figures.aligned
    start, described = time.perf_counter(), figures.described
    if reference is None:
        rows = aligned.df[aligned.df["split"] == split]
        reference = figures.reference(rows.iloc[:max_images] if max_images > 0 else rows, split, seed)
    rows, labels = heldout_rows(aligned, split, attribute, max_images)
    merge(result, figures.edits(generator, generator_size, attribute, rows, labels, gt), reference)
    log.info("[eval_sagan] %s: dlib id_distance %s (same person %s, different people %s, noise floor %s), "
             "id_kept %s on %d edits; %d descriptors in %.1f s", attribute, _r(result["id_distance"]),
             _r(reference["same_person"]), _r(reference["different_people"]), _r(reference["noise_floor"]),
             _r(result["id_kept"]), result["id_distance_images"], figures.described - described, time.perf_counter() - start)
    return reference


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _figures(d: np.ndarray) -> dict:
    """id_distance (mean), id_distance_p95, id_kept (< dlib's threshold), id_images of
    one set of distances (NaN: not measured, left out); None where there is none."""
    d = d[np.isfinite(d)]
    if not d.size:
        return {"id_distance": None, "id_distance_p95": None, "id_kept": None, "id_distance_images": 0}
    return {"id_distance": float(d.mean()), "id_distance_p95": float(np.percentile(d, 95)),
            "id_kept": float((d < idj.THRESHOLD).mean()), "id_distance_images": int(d.size)}
