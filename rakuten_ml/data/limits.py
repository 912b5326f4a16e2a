"""Size bounds of an input product, with no import of their own: settings and serving read them at start-up.

Bounds with a wide margin over the real data (designation max 250 chars, description max 12,000):
anything longer is a broken export, not a product.
"""

MAX_DESIGNATION_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 30_000
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Product photos are at most a few megapixels; a 16-megapixel ceiling keeps a hostile image
# from costing seconds of decode (and hundreds of MB: PNG has no draft mode) while leaving
# room for any real one. Serving applies it as is; ingestion reads Settings.ingest.max_image_side.
MAX_IMAGE_SIDE = 4096
MAX_ID = 2**63 - 1
