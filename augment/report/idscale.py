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
    """The SVG: references above the axis (grey), edits below it (blue), the
    threshold dashed, the same-person side of it shaded."""
    thr = reference.get("threshold")
    refs = [(f"{_SHORT[k]} {reference[k]:.2f}", reference[k]) for k, _ in _REFS if reference.get(k) is not None]
    values = [v for _, v in refs + edits] + ([thr] if thr is not None else [])
    hi = max([0.7, *[v * 1.1 for v in values]])

    def x(v: float) -> float:
        return LEFT + (RIGHT - LEFT) * max(0.0, min(v, hi)) / hi

    axis = 44
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="96" role="img" '
           f'aria-label="dlib distance scale" style="font:11px system-ui,sans-serif">']
    if thr is not None:
        out.append(f'<rect x="{LEFT}" y="{axis - 14}" width="{x(thr) - LEFT:.1f}" height="28" fill="#eef6ee"/>')
        out.append(f'<line x1="{x(thr):.1f}" y1="{axis - 16}" x2="{x(thr):.1f}" y2="{axis + 16}" stroke="#a44" '
                   f'stroke-dasharray="3,2"/>')
        out.append(f'<text x="{x(thr) - 3:.1f}" y="{axis + 12}" text-anchor="end" fill="#a44">threshold {thr:g}'
                   f'</text>')
    out.append(f'<line x1="{LEFT}" y1="{axis}" x2="{RIGHT}" y2="{axis}" stroke="#444"/>')
    for t in range(0, int(hi * 10) + 1):
        out.append(f'<text x="{x(t / 10):.1f}" y="94" text-anchor="middle" fill="#888">{t / 10:.1f}</text>')
    for (label, v), level in zip(refs, _levels([(x(v), label) for label, v in refs])):
        y = axis - 18 - 12 * level
        out.append(f'<line x1="{x(v):.1f}" y1="{axis - 8}" x2="{x(v):.1f}" y2="{axis + 8}" stroke="#666" '
                   f'stroke-width="2"/>')
        out.append(f'<text x="{x(v):.1f}" y="{y}" text-anchor="middle" fill="#555">{html.escape(label)}</text>')
    for (label, v), level in zip(edits, _levels([(x(v), label) for label, v in edits])):
        y = axis + 26 + 12 * level
        out.append(f'<circle cx="{x(v):.1f}" cy="{axis}" r="4.5" fill="#2a6fb0"/>')
        out.append(f'<text x="{x(v):.1f}" y="{y}" text-anchor="middle" fill="#2a6fb0">'
                   f'{html.escape(label)} {v:.2f}</text>')
    out.append("</svg>")
    return "".join(out)


def _levels(items: list[tuple[float, str]]) -> list[int]:
    """A text row (0 or 1) per centred label, so that neighbours on one row do not overlap."""
    ends: list[float] = [-1e9, -1e9]
    order = sorted(range(len(items)), key=lambda i: items[i][0])
    levels = [0] * len(items)
    for i in order:
        cx, label = items[i]
        half = CHAR * (len(label) + 5) / 2
        level = 0 if cx - half > ends[0] + 4 else 1
        levels[i] = level
        ends[level] = cx + half
    return levels
