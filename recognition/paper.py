"""The paper's recognition results, read off its ROC figures (about +-0.01).

Zhang et al. (ECCV 2018) print no table; these TAR values at FAR 1e-3, 1e-2
and 1e-1 were read off the figures (see the design notes). The LFW
+Eyeglasses curve at FAR 1e-3 spans 0.60-0.64 on the figure; its midpoint is
used.
"""

from __future__ import annotations

from typing import Sequence

# (protocol, model key) -> {FAR key: TAR}
PAPER_TAR: dict[tuple[str, str], dict[str, float]] = {
    ("celeba-ident", "baseline"): {"0.001": 0.58, "0.01": 0.735, "0.1": 0.88},
    ("celeba-ident", "Eyeglasses"): {"0.001": 0.62, "0.01": 0.77, "0.1": 0.89},
    ("celeba-ident", "Mouth_Slightly_Open"): {"0.001": 0.62, "0.01": 0.77, "0.1": 0.89},
    ("celeba-ident", "No_Beard"): {"0.001": 0.62, "0.01": 0.77, "0.1": 0.895},
    ("celeba-ident", "Smiling"): {"0.001": 0.61, "0.01": 0.765, "0.1": 0.89},
    ("lfw", "baseline"): {"0.001": 0.57, "0.01": 0.835, "0.1": 0.965},
    ("lfw", "Eyeglasses"): {"0.001": 0.62, "0.01": 0.85, "0.1": 0.96},
    ("lfw", "Mouth_Slightly_Open"): {"0.001": 0.71, "0.01": 0.87, "0.1": 0.97},
    ("lfw", "No_Beard"): {"0.001": 0.70, "0.01": 0.885, "0.1": 0.97},
    ("lfw", "Smiling"): {"0.001": 0.615, "0.01": 0.815, "0.1": 0.96},
}

# Words users put in model names -> the attribute the paper edited.
_ALIASES = {
    "eyeglasses": "Eyeglasses", "glasses": "Eyeglasses",
    "mouth_slightly_open": "Mouth_Slightly_Open", "mouth": "Mouth_Slightly_Open",
    "no_beard": "No_Beard", "beard": "No_Beard",
    "smiling": "Smiling", "smile": "Smiling",
}  # fmt: skip


def paper_key(name: str, attributes: Sequence[str] = (), is_baseline: bool = False) -> str | None:
    """The paper's model this one corresponds to (``baseline`` or one attribute), or None.

    A model trained with exactly one of the paper's attributes matches it; so
    does a name mentioning one (``+Eyeglasses``, ``resnet_glasses``). Models with
    several attributes have no counterpart (the paper trained none).
    """
    if is_baseline:
        return "baseline"
    attrs = [a for a in attributes if a]
    if len(attrs) == 1 and any(k[1] == attrs[0] for k in PAPER_TAR):
        return attrs[0]
    if attrs:
        return None
    low = name.lower().replace("-", "_")
    hits = {attr for word, attr in _ALIASES.items() if word in low}
    if len(hits) == 1:
        return hits.pop()
    return "baseline" if "baseline" in low else None


def paper_values(protocol: str, key: str | None) -> dict[str, float] | None:
    return PAPER_TAR.get((protocol, key)) if key else None
