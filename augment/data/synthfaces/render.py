"""Assemble faces from their layers, and their counterfactuals from the same layers.

The drawing order (back to front) is fixed: background, hair behind the head,
neck and clothes, ears, skin, relief, eyes, brows, the mouth folds, the beard,
the lips, the hair, the bangs and the glasses. Attribute-free layers are
painted once per batch; a counterfactual repaints only the layers from the
mouth folds up, with its attributes. Light gradient and sensor noise are
applied last, per pixel, with the same fields for a photo and all its
counterfactuals.
"""

from __future__ import annotations

import numpy as np

from augment.data.synthfaces import attributes as at
from augment.data.synthfaces import hair, parts
from augment.data.synthfaces.canvas import F32, composite, finish, keep_freed_memory
from augment.data.synthfaces.face import Face
from augment.data.synthfaces.params import Identity, Shot


class BatchRender:
    """B photos (each an identity and a shot) of one size, rendered together.

    ``images(attrs)`` returns (B, height, width, 3) uint8 RGB for any attribute
    setting ({attribute: (B, 1, 1) 0/1}; default: each shot's own). Layers are
    built lazily and cached, so the photos and their five counterfactuals cost
    about one full render plus the repainting of the upper layers. A photo's
    pixels depend only on its own identity and shot, not on the rest of the
    batch.
    """

    def __init__(self, items: list[tuple[Identity, Shot]], height: int, width: int):
        keep_freed_memory()
        self.face = Face([i for i, _ in items], [s for _, s in items], height, width)
        self._base: np.ndarray | None = None
        self._cache: dict = {}
        self._finish = None

    @property
    def attrs(self) -> dict[str, np.ndarray]:
        """The shots' own attributes, {name: (B, 1, 1) float32 0/1}."""
        return self._get("attrs", self.face.attrs)

    def toggled(self, attribute: str) -> dict[str, np.ndarray]:
        """The counterfactual setting: ``attribute`` flipped in every photo."""
        out = dict(self.attrs)
        out[attribute] = F32(1) - out[attribute]
        return out

    def _get(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def base(self) -> np.ndarray:
        """(B, 3, H, W) float32: everything below the first attribute-dependent layer."""
        if self._base is None:
            f = self.face
            img = parts.background(f)
            composite(img, hair.hair_back(f) + parts.body(f) + parts.ears(f) + parts.skin(f))
            composite(img, parts.skin_relief(f) + parts.eyes(f) + parts.brows(f))
            self._base = img
        return self._base

    def mouth_shape(self, attrs: dict) -> at.MouthShape:
        return at.mouth_shape(self.face, attrs["Smiling"], attrs["Mouth_Slightly_Open"])

    def layers(self, attrs: dict) -> list[tuple[np.ndarray | None, list]]:
        """The attribute-dependent layers in drawing order, in groups
        ``(photos, layers)``: ``photos`` the indices of the photos a group is
        drawn for, None for all (see ``composite``)."""
        f = self.face
        key = (attrs["Smiling"].tobytes(), attrs["Mouth_Slightly_Open"].tobytes())
        shape = self.mouth_shape(attrs)
        return [
            (None, self._get(("folds", key), lambda: at.mouth_folds(f, shape))),
            self._switched("beard", at.beard, F32(1) - attrs["No_Beard"]),
            (None, self._get(("mouth", key), lambda: at.mouth(f, shape))),
            (None, self._get("hair", lambda: hair.hair_front(f))),
            self._switched("bangs", at.bangs, attrs["Bangs"]),
            self._switched("glasses", at.glasses, attrs["Eyeglasses"]),
        ]

    def _switched(self, name: str, draw, on: np.ndarray) -> tuple[np.ndarray | None, list]:
        """Layers shown only in the photos where ``on`` (B, 1, 1) is 1, drawn for
        those photos only (a photo's pixels do not depend on the others in its
        batch): usually a few of a batch show a beard, glasses or bangs, and a
        counterfactual needs the others."""
        shown = on.reshape(-1).nonzero()[0]
        if len(shown) == self.face.n:
            return None, self._get(name, lambda: draw(self.face))
        if not len(shown):
            return None, []
        if name in self._cache:  # drawn for all already: zero alpha where not shown
            return None, [(layer[0], layer[1] * on, *layer[2:]) for layer in self._cache[name]]
        key = shown.tobytes()
        face = self._get(("face", key), lambda: self.face.subset(shown))
        return shown, self._get((name, key), lambda: draw(face))

    def images(self, attrs: dict | None = None, last: bool = False) -> np.ndarray:
        """``last``: no further render of this batch follows, so the layers are
        painted over the cached base itself rather than a copy (a later render
        would rebuild it)."""
        attrs = self.attrs if attrs is None else attrs
        img = self.base()
        if last:
            self._base = None
        else:
            img = img.copy()
        for photos, layers in self.layers(attrs):
            composite(img, layers, photos)
        gain, noise = self._get("finish", lambda: (parts.light_gain(self.face), parts.sensor_noise(self.face)))
        return finish(img, gain, noise)

    def landmarks(self, attrs: dict | None = None) -> np.ndarray:
        """(B, 10) float64 pixel coordinates: left eye, right eye, nose tip, left and
        right mouth corners (left = image left), as in CelebA's landmark files.
        The eyes are the pupil centres."""
        attrs = self.attrs if attrs is None else attrs
        i, s = self.face.i, self.face.s
        gx, gy = s.gx.reshape(-1), s.gy.reshape(-1)
        dx, ny = i.eye_dx.reshape(-1), i.nose_y.reshape(-1)
        eyes_nose = np.stack([np.stack([-dx + gx, gy], 1), np.stack([dx + gx, gy], 1),
                              np.stack([np.zeros_like(ny), ny], 1)], 1).astype(np.float64)
        pts = np.concatenate([eyes_nose, self.mouth_shape(attrs).corners()], 1)
        return self.face.canvas.to_pixels(pts).reshape(self.face.n, -1)


class FaceRender:
    """One photo: ``image(attrs)`` with attrs {name: 0/1}; a batch of one."""

    def __init__(self, ident: Identity, shot: Shot, height: int, width: int):
        self.batch = BatchRender([(ident, shot)], height, width)
        self.shot = shot

    def _attrs(self, attrs: dict | None) -> dict | None:
        return None if attrs is None else {k: np.full((1, 1, 1), v, F32) for k, v in attrs.items()}

    def image(self, attrs: dict | None = None) -> np.ndarray:
        return self.batch.images(self._attrs(attrs))[0]

    def landmarks(self, attrs: dict | None = None) -> np.ndarray:
        return self.batch.landmarks(self._attrs(attrs))[0]


def toggle(attrs: dict, attribute: str) -> dict:
    out = dict(attrs)
    out[attribute] = 1 - out[attribute]
    return out
