"""Product photos of the synthetic catalogue: one object on a white background, drawn with PIL.

Each class has a shape family, a palette and textures; confusable classes share shapes (books, game
boxes, figurines) so an image model learns a real but imperfect signal. Shapes are polygons in unit
coordinates ([-1, 1], y down), placed with random scale, rotation and position inside a white border.
Only the object's bounding box is composited, which keeps a 500x500 image at a few milliseconds.
"""

from __future__ import annotations

import colorsys
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
SHADOW: RGB = (232, 232, 232)
JPEG_QUALITY = 85
# Object half-extent as a share of the image side, and the white border kept around it (corners stay white).
SCALE_RANGE = (0.26, 0.46)
MARGIN_RANGE = (0.04, 0.12)
COLOUR_JITTER = 22.0
# Drift knobs at full strength: brightness x0.4..x1.6, hue turned by a third, a warm cast of +-30%.
BRIGHTNESS_GAIN = 0.6
HUE_ROTATION = 0.35
CAST_GAIN = 0.3


@dataclass
class Parts:
    """A drawing in unit coordinates: filled body (textured), holes, and flat-coloured details by role."""

    body: list[np.ndarray]
    holes: list[np.ndarray] = field(default_factory=list)
    details: list[tuple[np.ndarray, str]] = field(default_factory=list)


_CIRCLE = np.stack([np.cos(t := np.linspace(0, 2 * np.pi, 36, endpoint=False)), np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _ellipse(cx: float, cy: float, rx: float, ry: float | None = None) -> np.ndarray:
    return _CIRCLE * (rx, rx if ry is None else ry) + (cx, cy)


def _poly(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=float)


def _book(rng: np.random.Generator) -> Parts:
    a = rng.uniform(0.6, 0.8)
    band = rng.uniform(-0.6, 0.2)
    return Parts(
        [_rect(-a, -1, a, 1)],
        details=[(_rect(-a, band, a, band + 0.35), "accent"), (_rect(-a, -1, -a + 0.08, 1), "dark"),
                 (_rect(-a * 0.6, 0.55, a * 0.6, 0.62), "dark")],
    )


def _magazine(rng: np.random.Generator) -> Parts:
    a = rng.uniform(0.7, 0.78)
    lines = [(_rect(-a * 0.8, 0.75 + i * 0.07, a * rng.uniform(0.2, 0.8), 0.78 + i * 0.07), "dark") for i in range(3)]
    return Parts(
        [_rect(-a, -1, a, 1)],
        details=[(_rect(-a, -1, a, -0.72), "accent"), (_rect(-a * 0.85, -0.62, a * 0.85, 0.65), "light"), *lines],
    )


def _stack(rng: np.random.Generator) -> Parts:
    n = int(rng.integers(3, 6))
    step = 2.0 / n
    body, details = [], []
    for i in range(n):
        w, dx, y0 = rng.uniform(0.65, 1.0), rng.uniform(-0.12, 0.12), -1 + i * step
        body.append(_rect(-w + dx, y0, w + dx, y0 + step * 0.94))
        details.append((_rect(-w + dx, y0 + step * 0.8, w + dx, y0 + step * 0.94), "dark"))
    return Parts(body, details=details)


def _case(rng: np.random.Generator) -> Parts:
    a = rng.uniform(0.68, 0.78)
    return Parts(
        [_rect(-a, -1, a, 1)],
        details=[(_rect(-a, -1, a, -0.8), "accent"), (_ellipse(0, 0.1, a * 0.6, 0.45), "light"),
                 (_rect(-a, 0.85, a, 1), "dark")],
    )


def _disc(rng: np.random.Generator) -> Parts:
    return Parts(
        [_ellipse(0, 0, 1)],
        holes=[_ellipse(0, 0, 0.16)],
        details=[(_ellipse(0, 0, rng.uniform(0.3, 0.45)), "light"), (_ellipse(0, 0, 0.16), "white")],
    )


def _bigbox(rng: np.random.Generator) -> Parts:
    d = rng.uniform(0.12, 0.25)
    side = _poly((0.6, -0.9), (0.6 + d, -1), (0.6 + d, 0.9), (0.6, 1))
    return Parts(
        [_rect(-0.7, -0.9, 0.6, 1), side],
        details=[(side, "dark"), (_rect(-0.7, -0.9, 0.6, -0.6), "accent"), (_ellipse(-0.05, 0.2, 0.45), "light")],
    )


def _console(rng: np.random.Generator) -> Parts:
    h = 1 / rng.uniform(1.5, 2.2)
    return Parts(
        [_rect(-1, -h, 1, h)],
        details=[(_rect(-0.8, -h * 0.25, 0.3, -h * 0.1), "dark"), (_ellipse(0.6, 0, 0.12), "accent"),
                 (_ellipse(0.85, 0, 0.06), "light"), (_rect(-1, h * 0.7, 1, h), "dark")],
    )


def _gamepad(rng: np.random.Generator) -> Parts:
    spread = rng.uniform(0.5, 0.6)
    offsets = ((0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1))
    buttons = [(_ellipse(0.45 + dx, -0.1 + dy, 0.07), "accent") for dx, dy in offsets]
    return Parts(
        [_ellipse(0, -0.1, 0.8, 0.42), _ellipse(-spread, 0.3, 0.32, 0.5), _ellipse(spread, 0.3, 0.32, 0.5)],
        details=[(_rect(-0.55, -0.14, -0.3, -0.06), "dark"), (_rect(-0.47, -0.23, -0.39, 0.03), "dark"),
                 (_ellipse(-0.2, 0.2, 0.12), "dark"), (_ellipse(0.2, 0.2, 0.12), "dark"), *buttons],
    )


def _figure(rng: np.random.Generator) -> Parts:
    w = rng.uniform(0.3, 0.45)
    arm = rng.uniform(-0.2, 0.3)
    return Parts(
        [_ellipse(0, -0.72, 0.24), _poly((-w, -0.48), (w, -0.48), (w + 0.1, 0.65), (-w - 0.1, 0.65)),
         _rect(-w - 0.22, -0.45 + arm, -w, 0.2 + arm), _rect(w, -0.45 - arm, w + 0.22, 0.2 - arm),
         _ellipse(0, 0.8, 0.62, 0.18)],
        details=[(_ellipse(0, 0.8, 0.62, 0.18), "dark"), (_rect(-w, -0.1, w, 0.05), "accent"),
                 (_ellipse(-0.08, -0.75, 0.04), "white"), (_ellipse(0.08, -0.75, 0.04), "white")],
    )


def _card(rng: np.random.Generator) -> Parts:
    a = rng.uniform(0.66, 0.74)
    return Parts(
        [_rect(-a, -1, a, 1)],
        details=[(_rect(-a + 0.08, -0.8, a - 0.08, 0.1), "light"), (_ellipse(a - 0.2, -0.9, 0.07), "accent"),
                 (_rect(-a + 0.1, 0.3, a - 0.1, 0.36), "dark"), (_rect(-a + 0.1, 0.5, a - 0.3, 0.56), "dark")],
    )


def _bear(rng: np.random.Generator) -> Parts:
    ear = rng.uniform(0.11, 0.17)
    return Parts(
        [_ellipse(0, -0.45, 0.4, 0.38), _ellipse(-0.33, -0.78, ear), _ellipse(0.33, -0.78, ear),
         _ellipse(0, 0.38, 0.52, 0.6), _ellipse(-0.5, 0.85, 0.2, 0.14), _ellipse(0.5, 0.85, 0.2, 0.14)],
        details=[(_ellipse(0, -0.32, 0.16, 0.12), "light"), (_ellipse(-0.14, -0.52, 0.05), "dark"),
                 (_ellipse(0.14, -0.52, 0.05), "dark"), (_ellipse(0, 0.4, 0.3, 0.36), "light")],
    )


def _boardbox(rng: np.random.Generator) -> Parts:
    h = 1 / rng.uniform(0.95, 1.35)
    return Parts(
        [_rect(-1, -h, 1, h)],
        details=[(_rect(-0.85, -h * 0.8, 0.85, h * 0.2), "accent"), (_rect(-0.7, -h * 0.65, 0.7, h * 0.05), "light"),
                 (_rect(0.45, h * 0.4, 0.75, h * 0.4 + 0.3), "white"), (_ellipse(0.6, h * 0.4 + 0.15, 0.04), "dark")],
    )


def _vehicle(rng: np.random.Generator) -> Parts:
    cab = rng.uniform(-0.3, 0.2)
    return Parts(
        [_rect(-1, -0.1, 1, 0.45), _poly((cab - 0.45, -0.1), (cab - 0.25, -0.6), (cab + 0.4, -0.6), (cab + 0.6, -0.1))],
        details=[(_ellipse(-0.6, 0.45, 0.25), "dark"), (_ellipse(0.6, 0.45, 0.25), "dark"),
                 (_ellipse(-0.6, 0.45, 0.1), "light"), (_ellipse(0.6, 0.45, 0.1), "light"),
                 (_poly((cab - 0.3, -0.15), (cab - 0.18, -0.5), (cab + 0.33, -0.5), (cab + 0.45, -0.15)), "light")],
    )


def _dartboard(rng: np.random.Generator) -> Parts:
    rings = [(_ellipse(0, 0, r), role) for r, role in ((0.8, "dark"), (0.62, "accent"), (0.42, "light"), (0.2, "dark"))]
    return Parts([_ellipse(0, 0, 1)], details=[*rings, (_ellipse(0, 0, rng.uniform(0.04, 0.08)), "accent")])


def _tent(rng: np.random.Generator) -> Parts:
    top = rng.uniform(-0.3, 0.3)
    return Parts(
        [_poly((top, -0.9), (1, 0.85), (-1, 0.85))],
        details=[(_poly((top * 0.5, -0.15), (top * 0.5 + 0.3, 0.85), (top * 0.5 - 0.3, 0.85)), "dark"),
                 (_rect(-1, 0.8, 1, 0.9), "accent")],
    )


def _stroller(rng: np.random.Generator) -> Parts:
    hood = rng.uniform(0.5, 0.8)
    return Parts(
        [_ellipse(0, 0, 0.8, 0.45), _ellipse(-0.35, -0.25, hood * 0.6, hood * 0.55)],
        details=[(_rect(0.6, -0.9, 0.68, 0.1), "dark"), (_rect(0.45, -0.95, 0.95, -0.87), "dark"),
                 (_ellipse(-0.5, 0.75, 0.2), "dark"), (_ellipse(0.5, 0.75, 0.2), "dark"),
                 (_rect(-0.7, 0.05, 0.7, 0.12), "accent")],
    )


def _chair(rng: np.random.Generator) -> Parts:
    w = rng.uniform(0.45, 0.65)
    return Parts(
        [_rect(-w, -1, w, -0.05), _rect(-w - 0.1, -0.05, w + 0.1, 0.12), _rect(-w - 0.05, 0.12, -w + 0.07, 1),
         _rect(w - 0.07, 0.12, w + 0.05, 1)],
        details=[(_rect(-w * 0.75, -0.85, w * 0.75, -0.2), "light")],
    )


def _table(rng: np.random.Generator) -> Parts:
    top = rng.uniform(-0.5, -0.2)
    return Parts(
        [_rect(-1, top, 1, top + 0.15), _rect(-0.9, top + 0.15, -0.78, 0.9), _rect(0.78, top + 0.15, 0.9, 0.9)],
        details=[(_rect(-1, top + 0.12, 1, top + 0.15), "dark")],
    )


def _cabinet(rng: np.random.Generator) -> Parts:
    h = rng.uniform(0.5, 0.9)
    drawers = [(_rect(-0.85, -h + 0.1 + i * 0.45 * h, 0.85, -h + 0.45 * h * (i + 1)), "light") for i in range(3)]
    return Parts(
        [_rect(-1, -h, 1, h), _rect(-0.95, h, -0.85, h + 0.15), _rect(0.85, h, 0.95, h + 0.15)],
        details=[*drawers, (_rect(-0.1, -h * 0.8, 0.1, -h * 0.7), "dark")],
    )


def _frame(rng: np.random.Generator) -> Parts:
    h = 1 / rng.uniform(0.75, 1.35)
    return Parts(
        [_rect(-1, -h, 1, h)],
        details=[(_rect(-0.85, -h + 0.15, 0.85, h - 0.15), "light"),
                 (_ellipse(rng.uniform(-0.3, 0.3), 0, 0.4, h * 0.45), "accent")],
    )


def _vase(rng: np.random.Generator) -> Parts:
    belly = rng.uniform(0.45, 0.65)
    return Parts(
        [_ellipse(0, 0.3, belly, 0.68), _rect(-0.18, -0.9, 0.18, -0.2), _rect(-0.28, -1, 0.28, -0.88)],
        details=[(_rect(-belly * 0.9, 0.15, belly * 0.9, 0.3), "accent"), (_rect(-0.28, -1, 0.28, -0.92), "dark")],
    )


def _cushion(rng: np.random.Generator) -> Parts:
    h = rng.uniform(0.7, 1.0)
    body = [_rect(-0.9, -h * 0.9, 0.9, h * 0.9), _ellipse(0, 0, 1.0, h)]
    seams = [(_rect(-0.9, -0.02, 0.9, 0.02), "dark"), (_rect(-0.02, -h * 0.9, 0.02, h * 0.9), "dark")]
    return Parts(body, details=seams)


def _bottle(rng: np.random.Generator) -> Parts:
    w = rng.uniform(0.3, 0.45)
    return Parts(
        [_rect(-w, -0.3, w, 1), _poly((-w, -0.3), (-0.12, -0.6), (0.12, -0.6), (w, -0.3)),
         _rect(-0.12, -0.9, 0.12, -0.5)],
        details=[(_rect(-0.14, -1, 0.14, -0.82), "dark"), (_rect(-w, 0.1, w, 0.65), "accent")],
    )


def _jar(rng: np.random.Generator) -> Parts:
    w = rng.uniform(0.55, 0.75)
    return Parts(
        [_rect(-w, -0.6, w, 1), _rect(-w - 0.05, -0.85, w + 0.05, -0.6)],
        details=[(_rect(-w - 0.05, -0.85, w + 0.05, -0.6), "accent"), (_rect(-w, -0.2, w, 0.55), "light")],
    )


def _bowl(rng: np.random.Generator) -> Parts:
    ry = rng.uniform(0.5, 0.75)
    lower = _ellipse(0, 0, 1, ry)
    lower = lower[lower[:, 1] >= 0]
    return Parts(
        [np.vstack([lower, [[-1, 0]]]), _ellipse(0, 0, 1, 0.22)],
        details=[(_ellipse(0, 0, 0.88, 0.16), "dark"), (_ellipse(0, 0.02, 0.6, 0.1), "accent")],
    )


def _pool(rng: np.random.Generator) -> Parts:
    ry = rng.uniform(0.5, 0.8)
    return Parts(
        [_ellipse(0, 0, 1, ry)],
        details=[(_ellipse(0, 0, 0.86, ry * 0.82), "water"), (_rect(-0.5, -0.03, 0.2, 0.0), "light"),
                 (_rect(-0.2, ry * 0.3, 0.45, ry * 0.3 + 0.03), "light")],
    )


def _pump(rng: np.random.Generator) -> Parts:
    r = rng.uniform(0.35, 0.5)
    return Parts(
        [_rect(-0.8, -0.2, 0.6, 0.8), _ellipse(0.2, -0.4, r)],
        details=[(_rect(0.6, 0.1, 1.0, 0.25), "dark"), (_rect(-0.7, 0.0, 0.5, 0.05), "dark"),
                 (_rect(-0.7, 0.2, 0.5, 0.25), "dark"), (_ellipse(0.2, -0.4, r * 0.5), "accent")],
    )


def _drill(rng: np.random.Generator) -> Parts:
    grip = rng.uniform(-0.1, 0.1)
    return Parts(
        [_rect(-0.8, -0.55, 0.5, 0.05), _rect(-0.2 + grip, 0.0, 0.15 + grip, 0.8), _rect(0.5, -0.38, 0.95, -0.12)],
        details=[(_rect(-0.32 + grip, 0.78, 0.3 + grip, 1.0), "dark"),
                 (_rect(0.05 + grip, 0.05, 0.15 + grip, 0.2), "accent"),
                 (_rect(0.8, -0.3, 1.0, -0.2), "dark")],
    )


def _hammer(rng: np.random.Generator) -> Parts:
    head = rng.uniform(0.55, 0.8)
    return Parts(
        [_rect(-head, -0.95, head, -0.6), _rect(-0.1, -0.6, 0.1, 1)],
        details=[(_rect(-head, -0.95, head, -0.6), "dark"), (_rect(-0.12, 0.4, 0.12, 1), "accent")],
    )


def _notebook(rng: np.random.Generator) -> Parts:
    a = rng.uniform(0.62, 0.8)
    rings = [(_ellipse(-a + 0.1, -0.85 + i * 0.2, 0.05), "dark") for i in range(9)]
    lines = [(_rect(-a + 0.25, -0.6 + i * 0.25, a - 0.1, -0.58 + i * 0.25), "light") for i in range(6)]
    return Parts([_rect(-a, -1, a, 1)], details=[*lines, *rings, (_rect(-a + 0.2, -0.9, a - 0.1, -0.75), "accent")])


def _pencils(rng: np.random.Generator) -> Parts:
    n = int(rng.integers(3, 7))
    xs = np.linspace(-0.8, 0.8, n)
    body = [_rect(x - 0.09, -0.6, x + 0.09, 1) for x in xs]
    body += [_poly((x - 0.09, -0.6), (x + 0.09, -0.6), (x, -0.95)) for x in xs]
    return Parts(body, details=[(_poly((x - 0.03, -0.8), (x + 0.03, -0.8), (x, -0.95)), "dark") for x in xs])


Shape = Callable[[np.random.Generator], Parts]
# One registry of shape families, looked up by name from the class styles below.
SHAPES: dict[str, Shape] = {
    "book": _book, "magazine": _magazine, "stack": _stack, "case": _case, "disc": _disc, "bigbox": _bigbox,
    "console": _console, "gamepad": _gamepad, "figure": _figure, "card": _card, "bear": _bear,
    "boardbox": _boardbox, "vehicle": _vehicle, "dartboard": _dartboard, "tent": _tent, "stroller": _stroller,
    "chair": _chair, "table": _table, "cabinet": _cabinet, "frame": _frame, "vase": _vase, "cushion": _cushion,
    "bottle": _bottle, "jar": _jar, "bowl": _bowl, "pool": _pool, "pump": _pump, "drill": _drill,
    "hammer": _hammer, "notebook": _notebook, "pencils": _pencils,
}


def _plain(layer: Image.Image, colour: RGB, rng: np.random.Generator) -> None:
    return None


def _stripes(layer: Image.Image, colour: RGB, rng: np.random.Generator) -> None:
    draw, (w, h) = ImageDraw.Draw(layer), layer.size
    period = float(rng.uniform(12, 40))
    width = max(2, int(period * rng.uniform(0.2, 0.5)))
    slope = float(rng.choice([0.0, 1.0, -1.0, 1e3]))
    reach = w + h
    for offset in np.arange(-reach, reach, period):
        if slope > 100:  # vertical stripes
            draw.line((offset + reach / 2, 0, offset + reach / 2, h), fill=colour, width=width)
        else:
            draw.line((0, offset, w, offset + slope * w), fill=colour, width=width)


def _dots(layer: Image.Image, colour: RGB, rng: np.random.Generator) -> None:
    draw, (w, h) = ImageDraw.Draw(layer), layer.size
    step = float(rng.uniform(18, 40))
    radius = step * rng.uniform(0.12, 0.3)
    ys, xs = np.mgrid[0 : h + step : step, 0 : w + step : step]
    jitter = rng.normal(0, step * 0.1, size=(2, *xs.shape))
    for x, y in zip((xs + jitter[0]).ravel().tolist(), (ys + jitter[1]).ravel().tolist(), strict=True):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _checks(layer: Image.Image, colour: RGB, rng: np.random.Generator) -> None:
    draw, (w, h) = ImageDraw.Draw(layer), layer.size
    step = int(rng.integers(16, 44))
    for row, y in enumerate(range(0, h, step)):
        for x in range(step * (row % 2), w, 2 * step):
            draw.rectangle((x, y, x + step - 1, y + step - 1), fill=colour)


@functools.cache
def _noise_tile(side: int) -> Image.Image:
    """Blotchy 'L' mask twice ``side`` wide, made once from a fixed seed (renders stay deterministic)."""
    coarse = np.random.default_rng(20240917).integers(0, 200, size=(side // 5, side // 5), dtype=np.uint8)
    return Image.fromarray(coarse, mode="L").resize((2 * side, 2 * side), Image.Resampling.BILINEAR)


def _noise(layer: Image.Image, colour: RGB, rng: np.random.Generator) -> None:
    w, h = layer.size
    tile = _noise_tile(256 * (max(w, h) // 256 + 1))
    x, y = (int(v) for v in rng.integers(0, tile.width - max(w, h), size=2))
    layer.paste(colour, (0, 0, w, h), tile.crop((x, y, x + w, y + h)))


Texture = Callable[[Image.Image, RGB, np.random.Generator], None]
TEXTURES: dict[str, Texture] = {"plain": _plain, "stripes": _stripes, "dots": _dots, "checks": _checks, "noise": _noise}


@dataclass(frozen=True)
class VisualStyle:
    shapes: tuple[str, ...]  # drawn uniformly; confusable classes share families
    palette: tuple[RGB, ...]
    textures: tuple[str, ...]


_PAPER = ((236, 224, 190), (200, 170, 120), (150, 60, 50), (60, 80, 120))
_VIVID = ((220, 40, 50), (30, 90, 200), (250, 200, 30), (40, 160, 80), (240, 120, 30))
_GAME = ((20, 40, 140), (30, 30, 35), (30, 120, 60), (200, 30, 30))
_WOOD = ((150, 100, 60), (110, 70, 40), (200, 170, 130))
_SOFT = ((230, 220, 205), (180, 190, 200), (140, 150, 160), (215, 190, 200))


def _style(shapes: str, palette: tuple[RGB, ...], textures: str) -> VisualStyle:
    return VisualStyle(tuple(shapes.split()), palette, tuple(textures.split()))


VISUAL_STYLES: dict[int, VisualStyle] = {
    10: _style("book book stack", _PAPER, "plain noise"),
    2705: _style("book book book", (*_PAPER[2:], (240, 240, 235), (40, 120, 160)), "plain stripes"),
    2280: _style("magazine magazine book", ((230, 30, 40), (245, 245, 245), (30, 30, 30)), "plain noise"),
    2403: _style("stack stack book", (*_PAPER[:2], (230, 40, 40)), "plain noise"),
    40: _style("case case disc", _GAME, "plain noise"),
    2462: _style("stack case disc", _GAME, "plain stripes"),
    2905: _style("bigbox bigbox case", (*_GAME[:2], (120, 30, 140)), "plain noise"),
    60: _style("console console gamepad", ((30, 30, 35), (235, 235, 235), (90, 90, 100)), "plain"),
    50: _style("gamepad gamepad console", ((30, 30, 35), (200, 30, 30), (30, 90, 200)), "plain dots"),
    1140: _style("figure figure bigbox", (*_VIVID[:3], (90, 90, 95)), "plain noise"),
    1180: _style("figure figure figure", ((90, 90, 95), (60, 100, 60), (150, 40, 40), (210, 190, 150)), "plain noise"),
    1160: _style("card card card", ((250, 210, 40), (60, 110, 200), (200, 60, 60)), "plain stripes"),
    1280: _style("bear vehicle boardbox", _VIVID, "plain dots checks"),
    1281: _style("boardbox boardbox card", _VIVID[:4], "plain checks"),
    1300: _style("vehicle vehicle bigbox", ((200, 30, 30), (90, 110, 80), (180, 180, 185)), "plain stripes"),
    1301: _style("dartboard dartboard table", ((30, 110, 50), (20, 20, 20), (200, 40, 40)), "plain"),
    1302: _style("tent tent figure", ((250, 120, 30), (120, 60, 160), (40, 160, 80)), "plain stripes dots"),
    1320: _style("stroller stroller bear", ((170, 200, 230), (240, 190, 200), (230, 230, 210)), "plain dots"),
    1560: _style("chair table cabinet", (*_WOOD, (70, 70, 75)), "plain noise"),
    2060: _style("frame vase frame", ((200, 170, 80), (70, 70, 75), (160, 200, 190), _WOOD[0]), "plain noise stripes"),
    1920: _style("cushion cushion stack", _SOFT, "plain stripes checks"),
    1940: _style("bottle jar jar", ((120, 60, 30), (200, 40, 40), (60, 140, 60), (240, 200, 60)), "plain"),
    2220: _style("bowl bowl cushion", ((160, 110, 70), (60, 120, 200), (200, 60, 60)), "plain dots"),
    2522: _style("notebook pencils notebook", ((40, 90, 190), (230, 60, 90), (250, 210, 40), (245, 245, 240)),
                 "plain checks"),
    2582: _style("chair table tent", ((60, 120, 60), (90, 90, 90), *_WOOD[:2]), "plain stripes"),
    2583: _style("pool pool pump", ((60, 130, 210), (200, 200, 205), (40, 90, 60)), "plain stripes"),
    2585: _style("drill hammer pump", ((40, 120, 60), (230, 180, 20), (30, 80, 170), (220, 90, 20)), "plain"),
}


def _jitter(colour: RGB, rng: np.random.Generator, hue_turn: float) -> RGB:
    noise = rng.normal(0, COLOUR_JITTER, 3).tolist()
    r, g, b = (min(1.0, max(0.0, (c + d) / 255.0)) for c, d in zip(colour, noise, strict=True))
    if hue_turn:
        hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
        r, g, b = colorsys.hls_to_rgb((hue + hue_turn) % 1.0, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def _mix(colour: RGB, target: int, weight: float) -> RGB:
    r, g, b = (int(c + (target - c) * weight) for c in colour)
    return (r, g, b)


def _roles(style: VisualStyle, rng: np.random.Generator, hue_turn: float) -> dict[str, RGB]:
    """The colours one image uses, by the role names the shapes' details refer to."""
    picks = rng.permutation(len(style.palette))
    base = _jitter(style.palette[picks[0]], rng, hue_turn)
    return {
        "base": base,
        "accent": _jitter(style.palette[picks[1 % len(picks)]], rng, hue_turn),
        "dark": _mix(base, 0, 0.65),
        "light": _mix(base, 255, 0.6),
        "white": (250, 250, 250),
        "water": _jitter((70, 150, 215), rng, hue_turn),
    }


def _place(parts: Parts, size: int, rng: np.random.Generator) -> Parts:
    """Scale, rotate and move the unit drawing into the image, keeping a white border."""
    angle = rng.normal(0, 0.12) if rng.random() < 0.9 else rng.uniform(-0.7, 0.7)
    cos, sin = np.cos(angle), np.sin(angle)
    half = rng.uniform(*SCALE_RANGE) * size * rng.uniform(0.9, 1.1, 2)
    matrix = np.array([[cos, sin], [-sin, cos]]) * half[:, None]
    centre = size / 2 + rng.normal(0, 0.05 * size, 2)

    def move(p: np.ndarray) -> np.ndarray:
        return p @ matrix + centre

    points = move(np.vstack([*parts.body, *parts.holes, *(p for p, _ in parts.details)]))
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = rng.uniform(*MARGIN_RANGE) * size
    fit = min(1.0, (size - 2 * margin) / float((hi - lo).max()))
    mid = (lo + hi) / 2
    new_mid = np.clip(mid, margin + (mid - lo) * fit, size - margin - (hi - mid) * fit)

    def fitted(p: np.ndarray) -> np.ndarray:
        return (move(p) - mid) * fit + new_mid

    return Parts([fitted(p) for p in parts.body], [fitted(p) for p in parts.holes],
                 [(fitted(p), role) for p, role in parts.details])


def _drift(colour: RGB, brightness: float, cast: float) -> RGB:
    """A colour as a darker/brighter, warmer camera would record it (applied to every colour drawn)."""
    if not brightness and not cast:
        return colour
    gain = 1.0 + BRIGHTNESS_GAIN * brightness
    r, g, b = (min(255, max(0, int(c * gain * k))) for c, k in
               zip(colour, (1.0 + CAST_GAIN * cast, 1.0 + 0.05 * cast, 1.0 - CAST_GAIN * cast), strict=True))
    return (r, g, b)


def draw_product(code: int, rng: np.random.Generator, *, size: int = 500, brightness: float = 0.0,
                 colour: float = 0.0) -> bytes:
    """JPEG bytes of one product photo of class ``code``; ``brightness``/``colour`` are drift strengths."""
    style = VISUAL_STYLES[code]
    shape = SHAPES[style.shapes[int(rng.integers(len(style.shapes)))]]
    texture = TEXTURES[style.textures[int(rng.integers(len(style.textures)))]]
    roles = {k: _drift(v, brightness, colour) for k, v in _roles(style, rng, HUE_ROTATION * colour).items()}
    parts = _place(shape(rng), size, rng)

    points = np.vstack(parts.body)
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    w, h = int(x1 - x0 + 1), int(y1 - y0 + 1)
    mask = Image.new("L", (w, h), 0)
    mask_draw = ImageDraw.Draw(mask)
    for poly, fill in [(p, 255) for p in parts.body] + [(p, 0) for p in parts.holes]:
        mask_draw.polygon((poly - (x0, y0)).ravel().tolist(), fill=fill)
    fill_layer = Image.new("RGB", (w, h), roles["base"])
    texture(fill_layer, roles["accent"], rng)

    canvas = Image.new("RGB", (size, size), _drift(WHITE, brightness, colour))
    draw = ImageDraw.Draw(canvas)
    # a soft contact shadow, as on studio product shots
    shadow = _drift(SHADOW, brightness, colour)
    draw.ellipse((x0 + w * 0.1, y1 - h * 0.03, x1 - w * 0.1, min(y1 + h * 0.04, size - 2)), fill=shadow)
    canvas.paste(fill_layer, (int(x0), int(y0)), mask)
    for poly, role in parts.details:
        draw.polygon(poly.ravel().tolist(), fill=roles[role])
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
