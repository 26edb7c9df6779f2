"""The manifests' pyarrow schemas, one per kind (``augment/manifest.py`` writes and
reads them; manifests/README.md documents every column), and which columns
become file names (checked on read: ``NAME_COLUMNS``)."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

# The image manifest (schema v1) serves the source, aligned and edited images
# alike, so recognition trains on ``aligned + edits`` without any conversion.
# Edit-only columns are null for originals.
IMAGES = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),  # stable hash of source + path
        pa.field("path", pa.string(), nullable=False),  # relative to the manifest root
        pa.field("identity", pa.int64(), nullable=False),
        pa.field("identity_name", pa.string()),
        pa.field("split", pa.string(), nullable=False),  # train | val | test
        pa.field("source", pa.string(), nullable=False),  # celeba | lfw | synthfaces | folder | sagan
        pa.field("parent_id", pa.string()),  # edits: sample_id of the edited image
        pa.field("attribute", pa.string()),  # edits: CelebA attribute name
        pa.field("target_value", pa.int8()),  # edits: 1 = attribute present, 0 = absent
        pa.field("generator_id", pa.string()),  # edits: checkpoint hash
        pa.field("attr_prob", pa.float32()),  # edits: independent classifier's P(attribute)
        pa.field("id_similarity", pa.float32()),  # edits: cosine(source, edit) embeddings
        pa.field("mask_area", pa.float32()),  # edits: mean of the attention mask, [0, 1]
        pa.field("landmarks", pa.list_(pa.float32())),  # 10 floats: x,y of eyes, nose, mouth corners
        pa.field("bbox", pa.list_(pa.float32())),  # 4 floats: x1, y1, x2, y2 (source pixels)
        pa.field("det_prob", pa.float32()),  # detector probability (mtcnn mode)
        pa.field("transform", pa.list_(pa.float32())),  # 6 floats: 2x3 source -> aligned
        pa.field("attributes", pa.list_(pa.int8())),  # 40 values, CELEBA_ATTRIBUTES order, 1/-1
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),  # of the image file's bytes
    ],
)

REJECTS = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # unreadable | no_face | low_probability | too_small
        pa.field("detail", pa.string()),
    ]
)

PAIRS = pa.schema(
    [
        pa.field("fold", pa.int16(), nullable=False),
        pa.field("path_a", pa.string(), nullable=False),  # relative to the images root
        pa.field("path_b", pa.string(), nullable=False),
        pa.field("same", pa.bool_(), nullable=False),
    ]
)

GROUNDTRUTH = pa.schema(
    [
        pa.field("image", pa.string(), nullable=False),  # source image, relative to root
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("counterfactual", pa.string(), nullable=False),  # the image with the attribute toggled
        pa.field("mask", pa.string(), nullable=False),  # PNG, nonzero = changed pixel
    ]
)

# One row per trained SaGAN generator (the train_sagan stage).
GENERATORS = pa.schema(
    [
        pa.field("attribute", pa.string(), nullable=False),  # CelebA attribute name
        pa.field("path", pa.string(), nullable=False),  # checkpoint folder, relative to the root
        pa.field("generator_id", pa.string(), nullable=False),  # sha256[:16] of its weights file
        pa.field("step", pa.int64(), nullable=False),  # generator steps trained
        pa.field("preset", pa.string(), nullable=False),  # paper | fast
        pa.field("image_size", pa.int32(), nullable=False),  # input and output size, px
        pa.field("train_images", pa.int64()),  # training images with a known label
        pa.field("train_positive", pa.int64()),  # ... of which have the attribute
    ]
)

# One row per independent attribute classifier (the train_classifier stage).
CLASSIFIERS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),  # checkpoint folder, relative to the root
        pa.field("classifier_id", pa.string(), nullable=False),  # sha256[:16] of its weights file
        pa.field("attributes", pa.list_(pa.string()), nullable=False),  # the logits' order
        pa.field("accuracy", pa.list_(pa.float32())),  # held-out accuracy per attribute
        pa.field("balanced_accuracy", pa.list_(pa.float32())),  # mean of the two class recalls
        pa.field("eval_split", pa.string()),  # the held-out split measured (val, else test)
        pa.field("eval_images", pa.int64()),
        pa.field("image_size", pa.int32(), nullable=False),  # input size, px
        pa.field("step", pa.int64(), nullable=False),
    ]
)

# One row per trained face recognizer (the train_recognition stage).
RECOGNIZERS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),  # baseline | +<Attribute> | +all
        pa.field("path", pa.string(), nullable=False),  # checkpoint folder, relative to the root
        pa.field("backbone", pa.string(), nullable=False),
        pa.field("head", pa.string(), nullable=False),
        pa.field("embedding_size", pa.int32(), nullable=False),
        pa.field("image_size", pa.int32(), nullable=False),  # input size, px
        pa.field("attributes", pa.list_(pa.string()), nullable=False),  # edits trained with; [] = baseline
        pa.field("train_images", pa.int64(), nullable=False),  # originals + edits
        pa.field("identities", pa.int64(), nullable=False),  # classes of the training head
        pa.field("epochs", pa.int32(), nullable=False),
        pa.field("steps", pa.int64(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
    ]
)

# One embedding per image (evaluation caches; users' own models in the same form).
EMBEDDINGS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),  # relative to the images root
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    ]
)

# Columns whose values the tool turns into file names (or that name other rows
# by their sample id), checked on read: a manifest is untrusted input.
# "id": the form the tool writes (names.SAMPLE_ID); "component": one safe path
# component (names.component). Nulls pass (the schema says where they may be).
NAME_COLUMNS: dict[str, dict[str, str]] = {
    "images": {"sample_id": "id", "parent_id": "id", "attribute": "component"},
    "rejects": {"sample_id": "id"},
    "groundtruth": {"attribute": "component"},
    "generators": {"attribute": "component"},
    "recognizers": {"name": "component"},  # labels metrics, figure lines and embeddings caches
}

SCHEMAS: dict[str, pa.Schema] = {
    "images": IMAGES,
    "rejects": REJECTS,
    "pairs": PAIRS,
    "groundtruth": GROUNDTRUTH,
    "generators": GENERATORS,
    "classifiers": CLASSIFIERS,
    "recognizers": RECOGNIZERS,
    "embeddings": EMBEDDINGS,
}
