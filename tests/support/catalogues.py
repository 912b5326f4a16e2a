"""Hand-written catalogues for ingestion tests (every row's fate is known in advance) and hand-made image bytes."""

from __future__ import annotations

import io
import struct
import zlib

import pandas as pd
from PIL import Image

from rakuten_ml.storage.object_store import ObjectStore


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: int = 64) -> bytes:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    image.paste(Image.new("RGB", (size // 2, size // 2), colour), (size // 4, size // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def png_bytes(width: int, height: int) -> bytes:
    """A large-dimension image that stays small in bytes (one colour compresses well)."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_catalogue(store: ObjectStore, rows: list[dict], *, prefix: str = "", images: bool = True, extra_x_lines: str = "") -> None:
    """Write X/Y CSVs (challenge headers) and one JPEG per row unless the row says otherwise."""
    frame = pd.DataFrame(rows)
    x = frame[["designation", "description", "productid", "imageid"]]
    y = frame[["prdtypecode"]]
    join = (lambda name: f"{prefix}/{name}") if prefix else (lambda name: name)
    x_text = x.to_csv() + extra_x_lines
    store.put_bytes(join("X_train_update.csv"), x_text.encode())
    store.put_bytes(join("Y_train_CVw08PX.csv"), y.to_csv().encode())
    if not images:
        return
    for row in rows:
        image = row.get("_image", "ok")
        if image == "missing":
            continue
        data = jpeg_bytes() if image == "ok" else image
        store.put_bytes(join(f"image_train/image_{row['imageid']}_product_{row['productid']}.jpg"), data)


def good_rows(n: int, *, start: int = 1000, codes: tuple[int, ...] = (10, 2583, 1560, 2705)) -> list[dict]:
    return [
        {
            "designation": f"Produit numéro {i} coussin piscine",
            "description": "<p>Très bon &eacute;tat</p>" if i % 3 else float("nan"),
            "productid": start + i,
            "imageid": 500000 + i,
            "prdtypecode": codes[i % len(codes)],
        }
        for i in range(n)
    ]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over no pixels: a decompression bomb as its header shows it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")
