"""Image preprocessing shared by every vision member: safe decoding, white-border crop, resize, ImageNet
normalisation, and the train-time augmentation of the seed's EfficientNet pipeline (report 2.2).

Catalogue photos are mostly a product on a wide white background; cropping the border before the
resize makes the product fill the network's input whatever the seller's framing. One bad image must
never stop a batch: decoding returns ``None`` and callers mark the row unusable.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps
from torchvision.transforms import v2

log = logging.getLogger(__name__)

# The statistics every ImageNet-trained timm backbone (DINO included) was trained with; report 2.2.3
# calls them mandatory: features of a differently normalised image are meaningless.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

WHITE = (255, 255, 255)
# A pixel is background when all its channels are at least this bright: JPEG ringing keeps a white
# background within ~10 levels of 255, while the studio shadows under products (~232) count as content.
WHITE_THRESHOLD = 240
# A row/column is content when at least this share of its pixels is; isolated JPEG specks are not.
CONTENT_SHARE = 0.01
# White margin kept around the product, as a share of the longer side, so edges are not cut flush.
BORDER_MARGIN = 0.02

# Augmentation strengths: the seed's flips and small rotations, plus a colour jitter mild enough
# that class-typical palettes survive it.
ROTATION_DEGREES = 10.0
JITTER_BRIGHTNESS = 0.2
JITTER_CONTRAST = 0.2
JITTER_SATURATION = 0.2
JITTER_HUE = 0.02

ImageTransform = Callable[[Image.Image], torch.Tensor]


def decode_image(data: bytes | None, draft_size: int | None = None) -> Image.Image | None:
    """RGB image from encoded bytes, or ``None`` when absent or undecodable (logged, never raised).

    ``draft_size`` lets libjpeg decode a large JPEG at a reduced scale no smaller than that side,
    several times faster when the model input is much smaller than the photo.
    """
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()  # truncated or corrupt files fail here, not later inside a worker
            return _on_white(image)
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many types (OSError, SyntaxError, struct.error...)
        log.debug("undecodable image (%d bytes): %s", len(data), exc)
        return None


def _on_white(image: Image.Image) -> Image.Image:
    """RGB copy; transparent pixels become white, as a catalogue page shows them, not black."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def content_box(
    image: Image.Image, threshold: int = WHITE_THRESHOLD, margin: float = BORDER_MARGIN
) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the non-white content plus a margin, or ``None`` when all is white."""
    red, green, blue = image.convert("RGB").split()
    # Per-pixel darkest channel in C; numpy's min over a length-3 last axis is much slower.
    darkest = ImageChops.darker(ImageChops.darker(red, green), blue)
    content = np.asarray(darkest) < threshold
    height, width = content.shape
    rows = np.flatnonzero(content.sum(axis=1) >= max(1.0, CONTENT_SHARE * width))
    cols = np.flatnonzero(content.sum(axis=0) >= max(1.0, CONTENT_SHARE * height))
    if rows.size == 0 or cols.size == 0:
        return None
    pad = int(round(margin * max(height, width)))
    return (
        max(int(cols[0]) - pad, 0),
        max(int(rows[0]) - pad, 0),
        min(int(cols[-1]) + 1 + pad, width),
        min(int(rows[-1]) + 1 + pad, height),
    )


def crop_white_border(
    image: Image.Image, threshold: int = WHITE_THRESHOLD, margin: float = BORDER_MARGIN
) -> Image.Image:
    """The image cropped to its non-white content; the full image when everything is white."""
    box = content_box(image, threshold, margin)
    return image if box is None else image.crop(box)


class CropWhiteBorder:
    """Transform step: :func:`crop_white_border` (a class so that pipelines pickle to DataLoader workers)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return crop_white_border(image)


class PadToSquare:
    """Transform step: resize the longer side to ``size`` and pad with white, keeping the aspect ratio.

    Stretching a cropped book cover to a square would distort exactly the proportions that separate
    books, cards and magazines.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        return ImageOps.pad(image, (self.size, self.size), method=Image.Resampling.BILINEAR, color=WHITE)


class ToUint8Tensor:
    """Transform step: RGB PIL image -> uint8 tensor (3, H, W). Batches stay uint8 until
    :func:`normalize_batch` runs on the device: a quarter of the bytes to collate and copy to a GPU,
    and one vectorised normalisation per batch instead of one per image."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy())


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 batch (n, 3, H, W) -> float32 ImageNet-normalised, channels-last (faster convolutions
    and pooling on oneDNN and on CUDA tensor cores)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    normalised = (images.float() - mean) / std
    return normalised.contiguous(memory_format=torch.channels_last)


def build_transform(image_size: int, train: bool = False) -> ImageTransform:
    """PIL image -> uint8 tensor (3, image_size, image_size); ``train`` adds augmentation.

    The output is not normalised yet: :func:`normalize_batch` does it per batch on the device.
    """
    augment: list[Callable[..., object]] = []
    if train:
        augment = [
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(ROTATION_DEGREES, fill=255),  # the background stays white, not black wedges
            v2.ColorJitter(JITTER_BRIGHTNESS, JITTER_CONTRAST, JITTER_SATURATION, JITTER_HUE),
        ]
    return v2.Compose(
        [
            CropWhiteBorder(),
            PadToSquare(image_size),
            *augment,
            ToUint8Tensor(),
        ]
    )


def preprocess(data: bytes | None, transform: ImageTransform, draft_size: int | None = None) -> torch.Tensor | None:
    """Encoded bytes -> uint8 image tensor, or ``None`` when the image is unusable."""
    image = decode_image(data, draft_size)
    if image is None:
        return None
    try:
        return transform(image)
    except Exception as exc:  # noqa: BLE001 - a degenerate image (e.g. 0-pixel side after decode) is one bad row
        log.debug("image could not be transformed: %s", exc)
        return None
