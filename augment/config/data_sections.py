"""The config sections of the data stages: ``synth``, ``data`` (the read stage) and ``align``.

Part of ``augment.config.sections`` (which imports them back, and holds the
other sections and ``PipelineConfig``); the same rules hold here: each key is
defined once, with its type, its default and a comment saying what it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass(frozen=True)
class SynthConfig:
    """The ``synth`` stage: procedural SynthFaces written in CelebA/LFW formats.

    ``out`` empty means ``<workdir>/synth/data``. The stage skips rendering
    when ``out`` already holds a complete dataset made with the same settings.
    """

    out: str = ""
    identities: int = 60
    images_per_identity: int = 12
    lfw_identities: int = 30
    lfw_images_per_identity: int = 6
    size: int = 128
    habit_strength: float = 0.85  # P(a CelebA-part photo shows the person's habitual value)
    # The same for the LFW-part (evaluation) people; null = habit_strength. Lower
    # values give evaluation people photos with and without each attribute.
    lfw_habit_strength: Optional[float] = None
    # CelebA-part splits whose photos also get exact counterfactuals (the LFW
    # part always does); "train" lets the oracle stage build perfect edits.
    groundtruth_splits: tuple[Literal["train", "val", "test"], ...] = ("test",)
    # Per-attribute habit strengths, overriding the two above for the named
    # attributes, e.g. {Eyeglasses: 1.0}: a bias in one attribute only.
    habit_by_attribute: dict[str, float] = field(default_factory=dict)
    lfw_habit_by_attribute: dict[str, float] = field(default_factory=dict)
    # P(a person's habitual value is 1) per attribute, overriding the renderer's
    # priors (Eyeglasses 0.3, Smiling 0.5, Mouth_Slightly_Open 0.4, No_Beard 0.7, Bangs 0.3).
    habit_prior_by_attribute: dict[str, float] = field(default_factory=dict)
    jpeg_quality: int = 0  # 0 = lossless PNG; 1..100 = JPEG of that quality
    seed: Optional[int] = None  # None = the run seed
    workers: int = 0  # rendering processes; 0 = all CPU cores (the output does not depend on it)


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset on disk, in its official format.

    ``root`` empty with ``format: synthfaces`` means the synth stage's output.
    ``pairs`` is an LFW pairs file (View 1 or View 2), relative to ``root``
    unless absolute. ``align`` picks how its faces are aligned; ``auto`` uses a
    landmark file when the dataset has one and MTCNN otherwise.
    """

    format: Literal["celeba", "lfw", "synthfaces", "folder"] = "synthfaces"
    root: str = ""
    images: str = ""  # celeba only: img_align_celeba | img_celeba; empty = whichever exists
    pairs: str = ""
    # prealigned: CelebA-style aligned crops of any size (89x109 as well as
    # 178x218), cropped where CelebA's mean landmarks fall (augment.align.templates)
    align: Literal["auto", "mtcnn", "landmarks", "prealigned", "none"] = "auto"
    # Images without a landmark row under align auto / landmarks: crop as
    # prealigned, detect with mtcnn, or reject (reason no_landmarks); auto =
    # mtcnn under align auto, reject under align landmarks. The align log counts each.
    missing_landmarks: Literal["auto", "prealigned", "mtcnn", "reject"] = "auto"
    max_images: int = 0  # 0 = all; >0 keeps the first N (sorted) for quick trials
    # folder only: a CSV 'path,identity' naming each photo's person; empty = one
    # identity per subfolder, or per photo in a flat folder (augment.data.folder)
    identities: str = ""
    # Split of a training dataset without a partition file (folder, lfw):
    # 'train' = every image; 'by_identity' = identity-disjoint 80/10/10;
    # 'auto' = train for folder, by_identity for lfw. CelebA and SynthFaces use
    # their partition file; CelebA with 'by_identity' ignores it (a copy whose
    # partition puts every image in one split, as the first 10,000 images).
    split: Literal["auto", "train", "by_identity"] = "auto"


@dataclass(frozen=True)
class DataConfig:
    """The ``read`` stage: the training dataset and the evaluation (pairs) dataset."""

    train: DatasetConfig = field(default_factory=DatasetConfig)
    eval: Optional[DatasetConfig] = None
    # Beyond the paper (which trains everything on CelebA): the dataset that
    # train_classifier, train_sagan and eval_sagan learn from, when it is not
    # the recognizers' (e.g. labelled crops for SaGAN, many photos a person for
    # recognition). Aligned like data.train (same align section); null = data.train.
    sagan: Optional[DatasetConfig] = None


@dataclass(frozen=True)
class AlignConfig:
    """The ``align`` stage: detect (MTCNN) or read 5 landmarks, warp onto a template.

    The mode is per dataset (``data.train.align``, ``data.eval.align``).
    ``template: sagan`` is a loose crop keeping forehead, hair and glasses (like
    CelebA's aligned crops); ``arcface`` is the standard 112x112 5-point template
    scaled to ``size``.
    """

    template: Literal["sagan", "arcface"] = "sagan"
    size: int = 128
    select: Literal["largest", "central", "probable"] = "largest"
    keep_all: bool = False
    min_prob: float = 0.90
    min_face: int = 20  # px, shorter bbox side in the source image
    detect_max_side: int = 640  # photos are downscaled to this for detection; 0 = full size
    batch_size: int = 16
    workers: int = 0  # 0 = all CPU cores
    image_format: Literal["png", "jpg"] = "png"
    # Evaluation images without a usable face: a centred crop (the row keeps a
    # null det_prob and is listed in the manifest's extra) so pairs never lose an
    # image, or a reject. Training images without a face are always rejects.
    eval_fallback: Literal["centre_crop", "reject"] = "centre_crop"
