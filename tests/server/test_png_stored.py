"""png.stored and png.prepare (issue 14): a PNG's image data inflated by ISA-L and stored uncompressed
decodes, with Pillow, to exactly the pixels of the original file: every colour type and bit depth,
palettes, transparency, the bench's pictures; a plain 8-bit gray or RGB PNG decoded by libspng
gives Pillow's gray levels; and a file they cannot handle the same way goes to Pillow as it came, so a
corrupt or truncated upload gets the digit or the error it got before."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digits import imaging as mnist_imaging
from digits_server.core import imaging, png
from digits_server.core.errors import InvalidInput
from tests.scans import scanned

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import pictures  # noqa: E402

MAX_PIXELS = 4096 * 4096
# (IHDR colour type, bit depth): every combination PNG allows
FORMATS = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
           (4, 8), (4, 16), (6, 8), (6, 16)]


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(rng: np.random.Generator, colour: int, depth: int, side: int = 64, transparency: bool = False,
             interlace: int = 0, idat_size: int = 0, extra: tuple[bytes, ...] = ()) -> bytes:
    """A PNG of random scanlines under random filters (any filter byte 0-4 over any bytes is valid)."""
    row_bytes = (side * png.CHANNELS[colour] * depth + 7) // 8
    rows = rng.integers(0, 256, (side, row_bytes + 1), dtype=np.uint8)
    rows[:, 0] = rng.integers(0, 5, side)
    rows[side // 2:, 1:] //= 8  # a smoother half, so that the filters matter
    if colour == 3 and depth < 8:
        pass  # every index of a low-depth palette image exists
    elif colour == 3:
        rows[:, 0] = 0
        rows[:, 1:] %= 200  # indices below the palette's 200 entries
    data = zlib.compress(rows.tobytes(), 6)
    parts = [png.SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, interlace))]
    parts += list(extra)
    if colour == 3:
        entries = 200 if depth == 8 else 1 << depth
        parts.append(chunk(b"PLTE", rng.integers(0, 256, entries * 3, dtype=np.uint8).tobytes()))
    if transparency and colour == 3:
        parts.append(chunk(b"tRNS", rng.integers(0, 256, 7, dtype=np.uint8).tobytes()))
    elif transparency and colour in (0, 2):
        sample = rows[0, 1: 1 + png.CHANNELS[colour] * max(depth // 8, 1)].tobytes()
        value = int.from_bytes(sample[: max(depth // 8, 1)], "big") & ((1 << depth) - 1)
        parts.append(chunk(b"tRNS", struct.pack(">H", value) * (3 if colour == 2 else 1)))
    step = idat_size or len(data)
    parts += [chunk(b"IDAT", data[start: start + step]) for start in range(0, len(data), step)]
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


def outcome(data: bytes) -> tuple[str, object]:
    """What today's decoder makes of a file: the gray levels, or its error message."""
    try:
        levels = mnist_imaging.decode_levels(data, MAX_PIXELS)
    except mnist_imaging.ImageError as error:
        return "error", str(error)
    return str(levels.dtype), levels.tobytes()


def assert_same_pixels(data: bytes, rewritten: bool = True) -> None:
    stored = png.stored(data, MAX_PIXELS)
    assert (stored is not data) == rewritten
    assert outcome(stored) == outcome(data)


CASES = [(colour, depth, trns) for colour, depth in FORMATS for trns in (False, True) if not (trns and colour > 3)]


@pytest.mark.parametrize("colour, depth, transparency", CASES)
def test_every_colour_type_and_depth_decodes_to_the_same_pixels(colour: int, depth: int, transparency: bool) -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        side = int(rng.integers(100, 200)) * (3 if depth < 4 else 2 if depth == 4 else 1)  # >= MIN_COMPRESSED_BYTES
        assert_same_pixels(make_png(rng, colour, depth, side=side, transparency=transparency))


def test_split_image_data_and_other_chunks_are_kept() -> None:
    rng = np.random.default_rng(1)
    text = chunk(b"tEXt", b"Comment\x00scanned"), chunk(b"pHYs", struct.pack(">IIB", 3780, 3780, 1))
    assert_same_pixels(make_png(rng, 0, 8, side=120, idat_size=997, extra=text))
    exif = chunk(b"eXIf", bytes.fromhex("4d4d002a00000008000101120003000000010006000000000000"))  # rotated
    assert_same_pixels(make_png(rng, 2, 8, side=90, extra=(exif,)))


def test_the_bench_pictures_and_scans_decode_to_the_same_pixels() -> None:
    rng = np.random.default_rng(0)
    files = list(pictures.pngs(pictures.digit(None)).values())
    for light in (True, False):
        scan = scanned(pictures.digit(None), rng, light=light)
        for mode in ("L", "LA", "RGB", "RGBA", "P", "I;16"):
            buffer = io.BytesIO()
            (scan.quantize(50) if mode == "P" else scan.convert(mode)).save(buffer, "PNG")
            files.append(buffer.getvalue())
    for data in files:
        image_data = sum(len(part) for part in png._image_data(data)[2])
        assert_same_pixels(data, rewritten=image_data >= png.MIN_COMPRESSED_BYTES)
        assert np.array_equal(mnist_imaging.preprocess(png.stored(data, MAX_PIXELS)), mnist_imaging.preprocess(data))


def test_unusual_files_are_left_as_they_came() -> None:
    rng = np.random.default_rng(2)
    plain = make_png(rng, 0, 8, side=100)
    assert png.stored(plain, MAX_PIXELS) is not plain
    assert png.stored(plain, 100 * 100 - 1) is plain  # over the pixel limit: Pillow's header check rejects it
    assert_same_pixels(make_png(rng, 2, 8, side=100, interlace=1), rewritten=False)
    animated = chunk(b"acTL", struct.pack(">II", 1, 0))
    apng = make_png(rng, 0, 8, side=100, extra=(animated,))
    assert png.stored(apng, MAX_PIXELS) is apng
    small = make_png(rng, 0, 8, side=20)
    assert png.stored(small, MAX_PIXELS) is small
    start = plain.index(b"IDAT") + 4
    for header in (b"\x78\x9d", b"\x68\x81", b"\x78\xbb", b"\x79\x9c"):  # check bits, window, dictionary, method
        odd = plain[:start] + header + plain[start + 2:]
        assert_same_pixels(odd, rewritten=False)
    for cut in (len(plain) - 20, start + 100, start + 3000):  # IEND gone; image data cut short
        assert_same_pixels(plain[:cut], rewritten=False)
    assert png.stored(b"not a png", MAX_PIXELS) == b"not a png"


SEEDS = [make_png(np.random.default_rng(seed), colour, depth, side=80)
         for seed, (colour, depth) in enumerate([(0, 8), (2, 8), (3, 8), (6, 16), (0, 1)])]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid PNG with a few bytes overwritten (mostly in its image data) and/or cut short."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    start = data.index(b"IDAT") - 40 if draw(st.booleans()) else len(data) - 30  # anywhere, or the stream's end
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        data[draw(st.integers(min_value=start, max_value=len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=start, max_value=len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_corrupt_files_decode_or_fail_exactly_as_before(data: bytes) -> None:
    assert outcome(png.stored(data, MAX_PIXELS)) == outcome(data)


def digit_outcome(data: bytes, server: bool) -> tuple[str, object]:
    """The server's digit for a file (png.prepare, then Pillow or libspng), or today's (Pillow alone)."""
    try:
        if server:
            return "ok", imaging.from_encoded(data, "image.encoded").tobytes()
        return "ok", mnist_imaging.preprocess(data, MAX_PIXELS).tobytes()
    except InvalidInput as error:
        return "error", str(error).removeprefix("image.encoded: ")
    except mnist_imaging.ImageError as error:
        return "error", str(error)


def plain_scan(seed: int, extra: tuple[bytes, ...] = (), side: int = 0, rgb: bool = False) -> bytes:
    """An 8-bit gray (or tinted RGB) scan with ink (so that it preprocesses), random filters, these
    chunks before IDAT."""
    rng = np.random.default_rng(seed)
    scan = np.asarray(scanned(pictures.digit(None), rng, size=side or int(rng.integers(90, 260))))
    height, width = scan.shape
    if rgb:
        green = np.clip(scan.astype(int) + rng.integers(-20, 20, scan.shape), 0, 255)
        scan = np.stack([scan, green, scan // 2 + 100], axis=-1).astype(np.uint8).reshape(height, width * 3)
    rows = np.concatenate([rng.integers(0, 5, (height, 1), dtype=np.uint8), scan], axis=1)
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2 if rgb else 0, 0, 0, 0))
    image_data = chunk(b"IDAT", zlib.compress(rows.tobytes()))
    return b"".join([png.SIGNATURE, header, *extra, image_data, chunk(b"IEND", b"")])


HARMLESS = (chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1)), chunk(b"gAMA", struct.pack(">I", 45455)),
            chunk(b"sRGB", b"\x00"), chunk(b"cHRM", struct.pack(">8I", *range(8))))


def test_plain_gray_and_rgb_pngs_are_decoded_by_libspng_to_pillows_levels() -> None:
    files = [pictures.pngs(pictures.digit(None))["png200"]]
    files += [plain_scan(seed, HARMLESS[: seed % 5], rgb=seed % 2 == 1) for seed in range(30)]
    files += [make_png(np.random.default_rng(seed), colour, 8, side=120) for seed in range(3) for colour in (0, 2)]
    for data in files:
        prepared = png.prepare(data, MAX_PIXELS)
        assert isinstance(prepared, np.ndarray)
        assert outcome(data) == (str(prepared.dtype), prepared.tobytes())
        assert digit_outcome(data, server=True) == digit_outcome(data, server=False)


def test_other_pngs_go_to_pillow() -> None:
    data = plain_scan(0)
    ihdr_end = 33
    bad_crc = chunk(b"pHYs", b"\x00" * 9)[:-1] + b"\x00"
    others = [
        data[:ihdr_end] + chunk(b"tEXt", b"Comment\x00hello") + data[ihdr_end:],  # text may hold EXIF or XMP
        data[:ihdr_end] + chunk(b"pHYs", b"\x00" * 8) + data[ihdr_end:],  # a chunk of the wrong length
        data[:ihdr_end] + bad_crc + data[ihdr_end:],  # Pillow rejects it: so does the server
        data[:29] + b"\x00\x00\x00\x00" + data[ihdr_end:],  # IHDR's checksum wrong
        data + b"trailing",
        data[:-12] + chunk(b"eXIf", bytes.fromhex("4d4d002a00000008000101120003000000010006000000000000")) + data[-12:],
        *(make_png(np.random.default_rng(0), colour, 8, side=100) for colour in (3, 4, 6)),  # palette, alpha
        make_png(np.random.default_rng(0), 2, 8, side=100, transparency=True),  # RGB with tRNS
        make_png(np.random.default_rng(0), 2, 16, side=100),
    ]
    for other in others:
        assert not isinstance(png.prepare(other, MAX_PIXELS), np.ndarray)
        assert digit_outcome(other, server=True) == digit_outcome(other, server=False)
    assert not isinstance(png.prepare(plain_scan(1, side=100), 100 * 100 - 1), np.ndarray)


PLAIN_SEEDS = [plain_scan(seed, HARMLESS[:seed], rgb=seed == 2) for seed in range(3)]


@st.composite
def mutated_plain(draw: st.DrawFn) -> bytes:
    """A plain gray or RGB scan with a few bytes overwritten (anywhere, or near the end) and/or cut short."""
    data = bytearray(draw(st.sampled_from(PLAIN_SEEDS)))
    start = 8 if draw(st.booleans()) else len(data) - 40
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        data[draw(st.integers(min_value=start, max_value=len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=len(data) - 100, max_value=len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plain())
def test_corrupt_plain_files_give_the_digit_or_error_of_before(data: bytes) -> None:
    assert digit_outcome(data, server=True) == digit_outcome(data, server=False)
