"""The config sections: one frozen dataclass per stage, and ``PipelineConfig`` holding them.

This file, with ``data_sections.py`` (the ``synth``, ``data`` and ``align``
sections, imported back here), is the one place where a config key is defined:
its type, its default and a comment saying what it does (keys beyond the paper
say so and are off in the ``paper`` preset). A new stage's section goes here,
as a field of ``PipelineConfig`` named like the stage; its range checks go in
``augment/validate.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from augment.config.data_sections import AlignConfig, DataConfig, DatasetConfig, SynthConfig  # noqa: F401 (re-exported)


class ConfigError(Exception):
    """A configuration problem; the CLI prints it and exits with status 2."""


def _must_exist() -> dict:
    """Field metadata: a path that must exist when the config is loaded (empty = unset)."""
    return {"must_exist": True}


# --------------------------------------------------------------------------- #
# Sections (those of the data stages: data_sections.py)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TrainClassifierConfig:
    """The ``train_classifier`` stage: an independent attribute classifier (not D).

    Trained on real labelled aligned images; the edit stage and eval_sagan use it
    to judge edits, as AttGAN/STGAN do.
    """

    attributes: tuple[str, ...] = ("Eyeglasses",)
    image_size: int = 64
    width: int = 32  # channels of the first conv (then 2x, 4x, 8x, 8x)
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3  # peak of a one-cycle schedule (AdamW)
    checkpoint_every: int = 200
    workers: int = 0  # DataLoader worker processes; 0 = decode in the training process
    threads: int = 0  # torch CPU threads while training; 0 = torch's default (all cores)
    # Beyond the AttGAN/STGAN protocol (real images only), both off by default,
    # for a judge that a failed edit cannot fool (augment/sagan/classifier.py):
    smudge_fraction: float = 0.0  # share of each batch given a dark patch where the attribute sits, labels kept
    # what the patch is: dark (the default), colour noise, or half of the
    # smudge_fraction each (so a learnt speckle is a worse way to pass the judge)
    smudge_kind: Literal["dark", "noise", "dark+noise"] = "dark"
    counterfactuals: bool = False  # add SynthFaces' training counterfactuals with the attribute's label flipped
    # Whom it learns from (augment/sagan/judge.py choose_people). same: the
    # generator's training people (the train split), as AttGAN/STGAN. others:
    # only the val people with no photo in train (data split by identity), then
    # measured on test people neither saw; refused when there are none.
    people: Literal["same", "others"] = "same"


@dataclass(frozen=True)
class AttributeRecipe:
    """Beyond the paper: ``train_sagan`` keys that one attribute's generator
    trains with in place of the section's (null = the section's value). Each
    attribute's learning curve flattens at its own step, and an attribute may
    need its own weights (pipelines/pretrain.yaml)."""

    steps: int | None = None
    lr: float | None = None
    lambda_cls: float | None = None
    lambda1: float | None = None
    lambda2: float | None = None
    lambda_mask: float | None = None
    lambda_area: float | None = None
    mask_area_max: float | None = None
    lambda_region: float | None = None
    d_smudge_fraction: float | None = None


@dataclass(frozen=True)
class TrainSaganConfig:
    """The ``train_sagan`` stage: one SaGAN generator per attribute (SAGAN.md)."""

    preset: Literal["paper", "fast"] = "fast"
    attributes: tuple[str, ...] = ("Eyeglasses",)
    image_size: int = 0  # 0 = the preset's
    g_width: int = 0  # channels of F_m / F_a after their first conv; 0 = the preset's
    d_width: int = 0  # channels of D's first conv; 0 = the preset's
    res_blocks: int = -1  # residual blocks in F_m / F_a; -1 = the preset's
    # Beyond the paper (keep "none" for it): "max" divides each image's mask by its
    # maximum, so the strongest point of every mask is 1; "hard" makes it 1 where it
    # is at least half its maximum and 0 elsewhere (augment/sagan/model.py).
    mask_scale: Literal["none", "max", "hard"] = "none"
    # Beyond the paper (keep false for it): U-Net skips in F_m and F_a (augment/sagan/model.py).
    g_skips: bool = False
    steps: int = 1000  # generator steps (each after n_critic critic steps)
    batch_size: int = 16
    n_critic: int = 3
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_gp: float = 10.0
    lambda_cls: float = 1.0
    lambda1: float = 20.0  # dual reconstruction |I - G(G(I, c), c_g)|
    lambda2: float = 100.0  # identity reconstruction |I - G(I, c_g)|
    lambda_mask: float = 0.0  # mean-mask (L1) penalty; not in the paper, keep 0 for it
    # Beyond the paper, all off here (= the paper's training); they keep the mask
    # from vanishing or staying faint on a short CPU run (augment/sagan/losses.py,
    # docs/sagan_ablation.md for what each one does to the edits):
    detach_mask_identity: bool = False  # identity term trains F_m only, never shrinks the mask
    lambda_area: float = 0.0  # weight of the mask-area prior: each image's mean mask kept in [min, max]
    mask_area_min: float = 0.0
    mask_area_max: float = 1.0
    lambda_tv: float = 0.0  # total variation of the mask (one compact region)
    lambda_bin: float = 0.0  # mean b(1-b): a mask of 0s and 1s rather than a faint blend
    # the mask's mean outside the attribute's template region (augment.judges.regions
    # on the aligned crops' template): where the mask may lie, not only how big it is
    lambda_region: float = 0.0
    rec_warmup: int = 0  # generator steps over which lambda1 and lambda2 ramp linearly from 0 to full
    mask_soft_steps: int = 0  # with mask_scale "hard": generator steps trained with the soft mask first
    # decay of a moving average of G's weights, the generator exported (StyleGAN's
    # practice: it evens out the step-to-step swings of a GAN); 0 = off, the paper
    g_ema: float = 0.0
    lr_decay_from: float = 1.0  # fraction of the steps after which both lrs fall linearly to 0; 1 = constant
    # share of each critic batch also shown to D_cls with a dark patch over the
    # attribute's landmarks, true labels kept: a smudge no longer fools D_cls
    d_smudge_fraction: float = 0.0
    # what those patches are: "dark" (a smudge is not the attribute) or "fade"
    # (blended towards a blurred copy, labels kept: faint remains still count
    # as the attribute, so a removal must take it all away; augment/sagan/smudge.py)
    # or "noise" (blended towards colour noise: a speckle is not the attribute)
    d_smudge_kind: Literal["dark", "fade", "noise"] = "dark"
    # comma-separated differentiable augmentations of every image D sees
    # (color, translation, cutout; augment/sagan/diffaug.py): D on few images
    # otherwise memorises them and its attribute head is fooled cheaply
    diffaugment: str = ""
    # Beyond the paper (its values here): the adversarial objective. "wgan-gp" is
    # the paper's critic with the gradient penalty lambda_gp; "hinge" and
    # "nonsaturating" (HiSD, StarGAN v2) need no double backward per critic step
    # and usually go with n_critic 1 and an R1 penalty on real images:
    # r1_gamma / 2 * E||grad D_src(I)||^2, applied every r1_every critic steps
    # (lazily, scaled by r1_every; StyleGAN2). lr_d: D's own learning rate (0 = lr).
    objective: Literal["wgan-gp", "hinge", "nonsaturating"] = "wgan-gp"
    r1_gamma: float = 0.0
    r1_every: int = 1
    lr_d: float = 0.0
    # Beyond the paper (false there): a projection critic, D_src(I, c) (augment/sagan/model.py)
    d_projection: bool = False
    # Beyond the paper ("image" there): "image+change" lets F_a see the requested
    # change and gives the identity edit an all-zero mask (augment/sagan/sizes.py)
    mask_input: Literal["image", "image+change"] = "image"
    # Beyond the paper ("none" there): "spectral" normalises every weight of D
    # (augment/sagan/sizes.py); usually with objective hinge and no gradient penalty
    d_norm: Literal["none", "spectral"] = "none"
    checkpoint_every: int = 250
    sample_every: int = 250
    sample_images: int = 8  # rows of each sample grid (half with, half without the attribute)
    log_every: int = 10
    deterministic: bool = False  # torch.use_deterministic_algorithms while training
    workers: int = 0  # DataLoader worker processes; 0 = decode in the training process
    threads: int = 0  # torch CPU threads while training; 0 = torch's default (all cores)
    # Attributes trained at once, each in a process of its own with ``threads``
    # threads (0: the cores shared out). Small networks use many cores poorly: on
    # 2 cores, the fast preset at 64 px made 2.0 steps/s as two 1-thread
    # processes against 1.8 as one 2-thread process (pipelines/pretrain.yaml).
    # Each generator's weights are those of a run alone with the same threads.
    parallel: int = 1
    # Beyond the paper: per attribute, keys it trains with in place of the ones
    # above, e.g. {Eyeglasses: {steps: 3250}} (AttributeRecipe; the attribute must
    # be in ``attributes``). ``for_attribute`` gives the section one attribute sees.
    per_attribute: dict[str, AttributeRecipe] = field(default_factory=dict)
    # torch.compile the generator for training (Inductor; the critic stays eager:
    # its gradient penalty needs a double backward). Measured on a 2-core CPU
    # (benchmarks/RESULTS.md): the paper preset's step 1.25x faster than eager
    # (10.6 vs 13.2 s) after ~30 s of compiling; no gain on the fast preset.
    # Same math, not the same bits.
    compile: bool = False

    def for_attribute(self, attribute: str) -> TrainSaganConfig:
        """This section as ``attribute``'s generator trains with it: its
        ``per_attribute`` keys (those set) in place of the section's."""
        recipe = self.per_attribute.get(attribute)
        if recipe is None:
            return self
        return replace(self, **{k: v for k, v in asdict(recipe).items() if v is not None})


@dataclass(frozen=True)
class EvalSaganConfig:
    """The ``eval_sagan`` stage: edit quality on the test split."""

    split: str = "test"
    max_images: int = 0  # 0 = all
    batch_size: int = 32
    # edits per attribute and direction that dlib's identity judge describes
    # (~0.1 s a face on one thread); 0 = every judged edit, as for a model card
    id_per_direction: int = 64


@dataclass(frozen=True)
class EditConfig:
    """The ``edit`` stage: every training image x attribute x target value."""

    directions: Literal["both", "flip", "add", "remove"] = "both"
    splits: tuple[str, ...] = ("train",)
    batch_size: int = 32
    workers: int = 0
    min_attr_prob: float = 0.0
    min_id_similarity: float = -1.0
    max_mask_area: float = 1.0
    # Beyond the paper (1 there): the attention mask scaled by this and clipped at
    # 1 before blending; above 1 a faint edit is laid on more firmly (augment/sagan/apply.py)
    strength: float = 1.0
    # Drop edits whose dlib descriptor (augment/judges/identity.py, the 'judges'
    # extra) lies farther than this from their source's (on the aligned crops;
    # 0.6 = dlib's one-person threshold), counted in the stage's drops; 0 = off.
    max_id_distance: float = 0.0
    # a recognition checkpoint for id_similarity (and the min_id_similarity filter); empty = none
    recognizer: str = field(default="", metadata=_must_exist())
    shard_size: int = 10000  # files per output folder
    chunk_size: int = 256  # rows per resumable part (and per rank under torchrun)
    # torch.compile the generators (Inductor): on a 2-core CPU the paper preset's
    # edits 1.3x faster (12.1 vs 9.2 img/s) after a few seconds of compiling
    compile: bool = False
    # Models trained earlier, for a pipeline without the training stages
    # (e.g. ``stages: [read, align, edit]`` on new photos): a finished run
    # folder, its stage folder, the manifest, or a checkpoint folder. Empty =
    # the outputs of this pipeline's train_sagan / train_classifier. Not part
    # of the paper's method (a convenience); empty in the paper preset.
    # generators: ``pretrained`` = the generators shipped with augment
    # (``augment generators`` lists them); load_config pins it to
    # ``pretrained@<digest of the shipped files>``, so the edit stage reruns when they change.
    generators: str = field(default="", metadata={**_must_exist(), "or_pretrained": True})
    classifier: str = field(default="", metadata=_must_exist())


@dataclass(frozen=True)
class TrainRecognitionConfig:
    """The ``train_recognition`` stage: baseline vs augmented recognizers.

    The defaults are a CPU-friendly ResNet-18 (base width 16, 64 px); the paper's
    setting is ``width: 64`` (or 0) at ``image_size: 112`` on a GPU.
    ``budget: equal_steps`` gives every model the baseline's number of steps.
    """

    backbone: Literal["resnet18", "mobilefacenet", "iresnet50", "inception_resnet_v1"] = "resnet18"
    width: int = 16  # ResNet base channels (64 = published); 0 = the backbone's default
    # softmax: the most robust from scratch on small data; ArcFace (s 64, m 0.5)
    # from scratch on a few hundred images can fail to leave its first plateau.
    head: Literal["arcface", "cosface", "softmax"] = "softmax"
    scale: float = 64.0  # s of the margin heads
    margin: float = -1.0  # m of the margin heads; <0 = the head's (arcface 0.5, cosface 0.35)
    embedding_size: int = 512
    image_size: int = 64  # faces are resized to this (multiple of 16)
    dropout: float = 0.0
    models: Literal["per_attribute", "all", "both"] = "per_attribute"
    splits: tuple[str, ...] = ("train",)  # aligned/edit rows trained on
    budget: Literal["epochs", "equal_steps"] = "epochs"
    # Recognizers per model, each from its own seed ("baseline@1", "+Eyeglasses@1",
    # ...): the evaluation then reports the seed-to-seed spread and pairs every
    # augmented model with the baseline of the same seed. 1 = one of each.
    repeats: int = 1
    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    flip: float = 0.5  # classical augmentation: horizontal-flip probability
    max_shift: float = 0.0  # random shift and scale change, as a fraction of the image size; 0 = off
    max_rotate: float = 0.0  # random rotation, degrees; 0 = off
    color_jitter: float = 0.1  # brightness/contrast/saturation strength; 0 = off
    checkpoint_every: int = 1  # epochs
    keep_checkpoints: int = 2
    workers: int = 0  # DataLoader processes; 0 = decode once into memory in this process
    pretrained: str = field(default="", metadata=_must_exist())  # a local weights file; never downloaded


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` stage: LFW-protocol pairs and the paper's CelebA protocol.

    ``lfw`` scores the evaluation dataset's pairs; ``celeba-ident`` uses the
    aligned training dataset's ``ident_split`` identities (one target image each).
    """

    # lfw, celeba-ident, or attr-shift:<Attribute> (pairs across the attribute's
    # values, built from the evaluation images; see recognition/protocols.py)
    protocols: tuple[str, ...] = ("lfw",)
    # Attribute values of the evaluation images for attr-shift and strata:
    # dataset (the images' own labels), classifier (predicted by the
    # train_classifier stage's model) or a CSV file image,attribute,value.
    attributes_from: str = "dataset"
    # Attributes whose strata of the standard pairs are reported; empty = those of
    # the attr-shift protocols.
    strata: tuple[str, ...] = ()
    bootstrap: int = 1000  # paired bootstrap resamples for the deltas' CIs; 0 = none
    batch_size: int = 128
    ident_split: str = "test"
    # A pretrained recognizer scored beside the trained ones, on the same crops,
    # pairs and protocol, as its own row (recognition/reference.py): dlib (the
    # 'judges' extra); empty = none.
    reference: str = ""


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` stage: report.html and report.md."""

    grid_images: int = 8


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline: which stages run, where, and each stage's section."""

    name: str = "pipeline"
    workdir: str = "runs/pipeline"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    stages: tuple[str, ...] = ("read",)
    synth: SynthConfig = field(default_factory=SynthConfig)
    data: DataConfig = field(default_factory=DataConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    train_classifier: TrainClassifierConfig = field(default_factory=TrainClassifierConfig)
    train_sagan: TrainSaganConfig = field(default_factory=TrainSaganConfig)
    eval_sagan: EvalSaganConfig = field(default_factory=EvalSaganConfig)
    edit: EditConfig = field(default_factory=EditConfig)
    train_recognition: TrainRecognitionConfig = field(default_factory=TrainRecognitionConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
