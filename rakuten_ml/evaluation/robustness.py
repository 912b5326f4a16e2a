"""The seed's crash tests as a metric: how the image path holds up under rotation, noise, brightness."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

Perturbation = Callable[[Image.Image, np.random.Generator], Image.Image]


def _rotate(angle: float) -> Perturbation:
    return lambda img, _rng: img.rotate(angle, expand=False, fillcolor=(255, 255, 255))


def _noise(sigma: float) -> Perturbation:
    def apply(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        pixels = np.asarray(img, dtype=np.float32)
        noisy = np.clip(pixels + rng.normal(0.0, sigma, pixels.shape), 0, 255).astype(np.uint8)
        return Image.fromarray(noisy)

    return apply


def _brightness(factor: float) -> Perturbation:
    return lambda img, _rng: ImageEnhance.Brightness(img).enhance(factor)


PERTURBATIONS: dict[str, Perturbation] = {
    "rotate_15": _rotate(15),
    "rotate_30": _rotate(30),
    "rotate_90": _rotate(90),
    "gaussian_noise_25": _noise(25.0),
    "brightness_0.6": _brightness(0.6),
    "brightness_1.4": _brightness(1.4),
}


def perturb_images(images: Sequence[bytes | None], perturbation: Perturbation, seed: int = 42) -> list[bytes | None]:
    """Apply one perturbation to every decodable image; undecodable ones stay as they are."""
    rng = np.random.default_rng(seed)
    out: list[bytes | None] = []
    for data in images:
        if data is None:
            out.append(None)
            continue
        try:
            with Image.open(io.BytesIO(data)) as img:
                changed = perturbation(img.convert("RGB"), rng)
        except Exception:  # noqa: BLE001 - a broken image stays broken; the model flags it
            out.append(data)
            continue
        buffer = io.BytesIO()
        changed.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out
