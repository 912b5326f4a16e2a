"""Synthetic Rakuten catalogue (text, images, drift) in the real challenge file layout."""

from rakuten_ml.catalogue.generator import (
    CatalogueSpec,
    CatalogueSummary,
    DriftSpec,
    generate_catalogue,
    generate_frames,
    render_image,
)

__all__ = [
    "CatalogueSpec",
    "CatalogueSummary",
    "DriftSpec",
    "generate_catalogue",
    "generate_frames",
    "render_image",
]
