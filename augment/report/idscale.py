"""The identity judge's scale drawn as one line (an inline SVG): where the edits'
dlib distances lie between the noise floor, two photos of one person and two
people, and dlib's threshold. The Markdown (and the HTML beside the picture)
says the same in words (``scale_text``)."""

from __future__ import annotations

import html

WIDTH, LEFT, RIGHT = 640, 12, 628
CHAR = 6.2  # px per character of the 11 px labels, for keeping them apart


def scale_text(reference: dict, edits: list[tuple[str, float]]) -> str:
    """The scale in words: the edits' mean distances against the reference distances."""
    refs = ", ".join(f"{label} {reference[key]:.3f}" for key, label in _REFS if reference.get(key) is not None)
    mine = ", ".join(f"{label} {v:.3f}" for label, v in edits)
    thr = reference.get("threshold")
    tail = f"; dlib calls two faces the same person below {thr:g}" if thr is not None else ""
    return f"dlib distance from each face to its edit: {mine}. For scale, on the same faces: {refs}{tail}."


_REFS = (("noise_floor", "noise floor (same photo shifted 2 px)"), ("same_person", "same person"),
         ("different_people", "different people"))
_SHORT = {"noise_floor": "noise floor", "same_person": "same person", "different_people": "different people"}


def scale_svg(reference: dict, edits: list[tuple[str, float]]) -> str:
    """The SVG: the references (and dlib's threshold, dashed, its same-person
    side shaded) labelled above the axis, the edits (blue dots) below it, each
    label on the first text row where it does not overlap its neighbours."""
    thr = reference.get("threshold")
    refs = [(f"{_SHORT[k]} {reference[k]:.2f}", reference[k], "#555") for k, _ in _REFS if reference.get(k) is not None]
    if thr is not None:
        refs.append((f"threshold {thr:g}", thr, "#a44"))
    mine = [(f"{label} {v:.2f}", v, "#2a6fb0") for label, v in edits]
    hi = max([0.7, *[v * 1.1 for _, v, _ in refs + mine]])

    def x(v: float) -> float:
        return LEFT + (RIGHT - LEFT) * max(0.0, min(v, hi)) / hi

    up, down = _levels([(x(v), t) for t, v, _ in refs]), _levels([(x(v), t) for t, v, _ in mine])
    axis = 22 + 13 * max(up, default=0)
    height = axis + 34 + 13 * max(down, default=0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
           f'aria-label="dlib distance scale" style="font:11px system-ui,sans-serif">']
    if thr is not None:
        out.append(f'<rect x="{LEFT}" y="{axis - 9}" width="{x(thr) - LEFT:.1f}" height="18" fill="#eef6ee"/>')
    out.append(f'<line x1="{LEFT}" y1="{axis}" x2="{RIGHT}" y2="{axis}" stroke="#444"/>')
    for t in range(0, int(hi * 10) + 1):
        out.append(f'<text x="{x(t / 10):.1f}" y="{axis + 19}" text-anchor="middle" fill="#999" '
                   f'font-size="10">{t / 10:.1f}</text>')
    for (text, v, colour), level in zip(refs, up):
        dash = ' stroke-dasharray="3,2"' if colour == "#a44" else ""
        out.append(f'<line x1="{x(v):.1f}" y1="{axis - 10 - 13 * level}" x2="{x(v):.1f}" y2="{axis + 9}" '
                   f'stroke="{colour}" stroke-width="1.5"{dash}/>')
        out.append(f'<text x="{x(v):.1f}" y="{axis - 13 - 13 * level}" text-anchor="middle" fill="{colour}">'
                   f'{html.escape(text)}</text>')
    for (text, v, colour), level in zip(mine, down):
        y = axis + 34 + 13 * level
        out.append(f'<line x1="{x(v):.1f}" y1="{axis}" x2="{x(v):.1f}" y2="{y - 10}" stroke="{colour}" '
                   f'stroke-width="0.6"/>')
        out.append(f'<circle cx="{x(v):.1f}" cy="{axis}" r="4.5" fill="{colour}"/>')
        out.append(f'<text x="{x(v):.1f}" y="{y}" text-anchor="middle" fill="{colour}">{html.escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _levels(items: list[tuple[float, str]]) -> list[int]:
    """A text row per centred label (0 nearest the axis), so that labels on one row do not overlap."""
    ends: list[float] = []
    levels = [0] * len(items)
    for i in sorted(range(len(items)), key=lambda i: items[i][0]):
        cx, label = items[i]
        half = CHAR * len(label) / 2
        level = next((k for k, end in enumerate(ends) if cx - half > end + 6), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = cx + half
        levels[i] = level
    return levels
