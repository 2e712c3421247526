"""PNG files made cheaper for Pillow to decode: the image data inflated once by ISA-L (issue 14).

Most of the CPU of decoding an uploaded PNG scan is zlib inflating its image data (a scan's noise
does not compress). ISA-L inflates ~3x faster than the zlib Pillow links. `stored` inflates the
IDAT chunks with ISA-L and hands back the same PNG with the scanlines in *stored* (uncompressed)
deflate blocks: every other chunk byte for byte, the same filtered scanlines, so Pillow decodes
exactly the same pixels (any colour type, bit depth, palette, transparency, EXIF) and only skips
the inflating. Whatever is unusual (interlaced, animated, a zlib header Pillow's zlib would treat
differently, chunks running past the end, image data that does not inflate cleanly to every
scanline) is left as it came, for Pillow to decode or reject exactly as before.

`prepare` goes one step further for the plainest files (8-bit grayscale or RGB, nothing but
harmless chunks; what Pillow writes, and most scanners): libspng unfilters the stored copy to the
very samples Pillow would decode, in half Pillow's time (RGB then grayed by Pillow's own "L"
conversion, as `digits.imaging` does).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pyspng
from isal import isal_zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by IHDR colour type
DEPTHS = (1, 2, 4, 8, 16)
ANIMATION_CHUNKS = (b"acTL", b"fcTL", b"fdAT")  # APNG: Pillow may pick another frame's data
STORED_BLOCK = 65535  # the most bytes one stored deflate block holds
MIN_COMPRESSED_BYTES = 2048  # below this, inflating costs less than rewriting the file (a 28x28 PNG: ~300 B)
# ancillary chunks Pillow reads without effect on an 8-bit gray image's samples, by their only valid length
PLAIN_CHUNKS = {b"pHYs": 9, b"gAMA": 4, b"sRGB": 1, b"cHRM": 32}
# IHDR's last five bytes: depth 8, grayscale or RGB, deflate, adaptive filtering, not interlaced
PLAIN_KINDS = {b"\x08\x00\x00\x00\x00": 1, b"\x08\x02\x00\x00\x00": 3}  # -> channels
MAX_PLAIN_PIXELS = 4096 * 4096  # below Pillow's own decompression-bomb warning, whatever the server's limit
_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")


def decoded_bytes(data: bytes) -> int | None:
    """Bytes of scanlines a PNG decompresses to, from its IHDR; None when `data` is not a PNG."""
    if len(data) < 29 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, _ = _IHDR.unpack_from(data, 16)
    channels = CHANNELS.get(colour)
    if channels is None or depth not in DEPTHS:
        return None
    return height * (1 + (width * channels * depth + 7) // 8)


def _chunks(data: bytes) -> Iterator[tuple[bytes | None, int, int]]:
    """(kind, start, end) of each whole chunk after the signature, in order; a chunk running past
    the end of `data` comes as kind None (and ends the walk)."""
    position, size = 8, len(data)
    while position + 12 <= size:
        length, kind = _CHUNK_HEAD.unpack_from(data, position)
        end = position + 12 + length
        if end > size:
            yield None, position, size
            return
        yield kind, position, end
        position = end


def _image_data(data: bytes) -> tuple[int, int, list[bytes]] | None:
    """(start, end, payloads) of the first run of IDAT chunks, or None if the file is unusual."""
    start, after, payloads = 0, 8, []
    for kind, position, end in _chunks(data):
        if kind is None:
            return None
        if kind == b"IDAT":
            start = start or position
            payloads.append(data[position + 8: end - 4])
        elif payloads:
            return start, position, payloads
        elif kind in ANIMATION_CHUNKS or kind == b"IEND":
            return None
        after = end
    return (start, after, payloads) if payloads else None


def _stored_zlib(raw: bytes) -> list[bytes]:
    """`raw` as a zlib stream of stored deflate blocks (no compression), in pieces."""
    pieces = [b"\x78\x01"]
    for offset in range(0, len(raw), STORED_BLOCK):
        block = raw[offset: offset + STORED_BLOCK]
        final = offset + STORED_BLOCK >= len(raw)
        pieces += (struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF), block)
    pieces.append(struct.pack(">I", isal_zlib.adler32(raw)))
    return pieces


def stored(data: bytes, max_pixels: int) -> bytes:
    """`data` with its image data inflated and stored uncompressed, when it is a plain PNG of at most
    `max_pixels` whose IDAT (of at least MIN_COMPRESSED_BYTES) inflates cleanly to all its scanlines;
    else `data` itself, unchanged."""
    expected = decoded_bytes(data)
    if expected is None or data[26:29] != b"\x00\x00\x00":  # compression, filter method; not interlaced
        return data
    width, height = _IHDR.unpack_from(data, 16)[:2]
    found = _image_data(data) if width * height <= max_pixels else None
    if found is None:
        return data
    start, end, payloads = found
    compressed = b"".join(payloads)
    if len(compressed) < MIN_COMPRESSED_BYTES:
        return data
    # zlib's own header checks (deflate, 32 KiB window, check bits, no preset dictionary)
    method, flags = compressed[0], compressed[1]
    if method != 0x78 or flags & 0x20 or (method << 8 | flags) % 31:
        return data
    try:
        raw = isal_zlib.decompressobj().decompress(compressed, expected)
    except isal_zlib.error:
        return data
    if len(raw) < expected:
        return data
    body = b"".join([b"IDAT", *_stored_zlib(raw)])
    chunk = (struct.pack(">I", len(body) - 4), body, struct.pack(">I", isal_zlib.crc32(body)))
    return b"".join([data[:start], *chunk, data[end:]])


def _plain(data: bytes) -> bool:
    """Whether a PNG is an 8-bit grayscale or RGB image (PLAIN_KINDS) with only IHDR and PLAIN_CHUNKS
    (of their length, with the checksums Pillow verifies), then IDAT chunks, then an empty IEND ending
    the file."""
    if data[8:16] != b"\x00\x00\x00\x0dIHDR" or data[24:29] not in PLAIN_KINDS:
        return False
    image_data = False
    for kind, position, end in _chunks(data):
        if kind is None:
            return False
        length = end - position - 12
        if kind == b"IDAT":
            image_data = True
        elif image_data:
            return kind == b"IEND" and length == 0 and end == len(data)
        elif kind != b"IHDR" and PLAIN_CHUNKS.get(kind) != length:
            return False
        elif struct.unpack_from(">I", data, end - 4)[0] != isal_zlib.crc32(data[position + 4: end - 4]):
            return False
    return False


def prepare(data: bytes, max_pixels: int) -> bytes | np.ndarray:
    """An upload made cheap to decode: a plain 8-bit grayscale or RGB PNG (`_plain`) as its gray
    levels, uint8 [H,W], exactly Pillow's; any other file as `stored(data, max_pixels)`, for Pillow."""
    quick = stored(data, max_pixels)
    if quick is data or not _plain(data):
        return quick
    width, height = _IHDR.unpack_from(data, 16)[:2]
    if not 0 < width * height <= MAX_PLAIN_PIXELS:
        return quick
    try:
        samples = pyspng.load(quick)
    except RuntimeError:  # what libspng rejects, Pillow decodes or rejects as it always did
        return quick
    gray = PLAIN_KINDS[data[24:29]] == 1
    if samples.dtype != np.uint8 or samples.shape != ((height, width) if gray else (height, width, 3)):
        return quick
    if gray:
        return samples
    from PIL import Image

    return np.asarray(Image.fromarray(samples, "RGB").convert("L"))  # the conversion digits.imaging makes
