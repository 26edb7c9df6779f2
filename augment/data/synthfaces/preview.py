"""A contact sheet for people: one row per identity, the photo and each attribute toggled."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from augment.data.synthfaces.params import ATTRIBUTES, sample_identity, sample_shot
from augment.data.synthfaces.render import BatchRender

LABELS = {"Eyeglasses": "glasses", "Smiling": "smile", "Mouth_Slightly_Open": "mouth open", "No_Beard": "beard",
          "Bangs": "bangs"}


def contact_sheet(seed: int, rows: int = 6, size: int = 128, habit_strength: float = 0.85) -> Image.Image:
    """Rows = the first ``rows`` CelebA-part identities (their first photo), columns =
    the photo, then each attribute toggled; a tag in each cell says what was
    added (+) or removed (-)."""
    head = max(14, size // 7)
    sheet = Image.new("RGB", (size * (1 + len(ATTRIBUTES)), head + size * rows), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(9, head * 2 // 3))
    for c, title in enumerate(["photo", *ATTRIBUTES]):
        draw.text((c * size + 3, 2), title.replace("Mouth_Slightly_Open", "Mouth_Open"), fill=(0, 0, 0), font=font)
    items = []
    for r in range(rows):
        ident = sample_identity(seed, "celeba", r)
        items.append((ident, sample_shot(seed, "celeba", ident, r, 0, (size, size), habit_strength)))
    render = BatchRender(items, size, size)
    photos = render.images()
    toggled = {a: render.images(render.toggled(a)) for a in ATTRIBUTES}
    for r, (_, shot) in enumerate(items):
        y = head + r * size
        sheet.paste(Image.fromarray(photos[r]), (0, y))
        for c, a in enumerate(ATTRIBUTES, 1):
            sheet.paste(Image.fromarray(toggled[a][r]), (c * size, y))
            value = 1 - shot.attrs[a]
            shown = value if a != "No_Beard" else 1 - value  # the visible feature
            tag = ("+" if shown else "-") + LABELS[a]
            box = draw.textbbox((0, 0), tag, font=font)
            x0, y0 = c * size + 2, y + size - (box[3] - box[1]) - 6
            draw.rectangle((x0, y0, x0 + box[2] - box[0] + 4, y + size - 2), fill=(0, 0, 0))
            draw.text((x0 + 2, y0 - box[1] + 2), tag, fill=(255, 255, 255), font=font)
    return sheet


def write_contact_sheet(path: Path | str, seed: int, rows: int = 6, size: int = 128,
                        habit_strength: float = 0.85) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(seed, rows, size, habit_strength)
    sheet.save(path, optimize=True)
    return path
