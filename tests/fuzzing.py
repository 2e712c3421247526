"""Hostile inputs for the fuzz tests: hypothesis strategies for digits.v1 requests, and
hand-made malicious image files (truncated, corrupt, huge dimensions, decompression bombs).

Everything is built at test time (nothing large is committed). `tests/corpus/` holds the
inputs that once broke something; `corpus_cases` reads them back.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from hypothesis import strategies as st

from digits.v1 import digits_pb2 as pb

CORPUS = Path(__file__).resolve().parent / "corpus"

# Codes a digits.v1 call may end with on bad or odd input. INTERNAL and UNKNOWN never.
DOCUMENTED_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)

# --- hypothesis strategies for requests ---------------------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.0000001, -1e-30, 1e30, 255.0])
PIXEL_FLOATS = st.one_of(st.floats(min_value=0.0, max_value=1.0, width=32), ODD_FLOATS, st.floats(width=32))
NAMES = st.one_of(
    st.sampled_from(["", "lstm", "rnn", "gru", "LSTM", "lstm ", "../lstm", "lstm\x00", "ünïcødé", "stable"]),
    st.text(max_size=40),
    st.integers(min_value=250, max_value=20_000).map(lambda n: "x" * n),
)


@st.composite
def model_specs(draw: st.DrawFn) -> pb.ModelSpec:
    """Any combination of selector fields, contradictory ones included."""
    spec = pb.ModelSpec(
        name=draw(NAMES),
        version_label=draw(st.one_of(st.just(""), NAMES)),
        experiment=draw(st.one_of(st.just(""), NAMES)),
        routing_key=draw(st.one_of(st.just(""), NAMES)),
    )
    if draw(st.booleans()):
        spec.version = draw(st.one_of(st.sampled_from([0, 1, 2, -1]), INT64))
    return spec


@st.composite
def pixel_bytes(draw: st.DrawFn) -> bytes:
    """784 bytes mostly, and lengths around and far from it (built from a short drawn pattern:
    drawing 784 independent bytes makes hypothesis slow without finding more)."""
    pattern = draw(st.binary(min_size=1, max_size=16))
    length = draw(st.one_of(st.just(784), st.integers(min_value=0, max_value=2000)))
    return (pattern * (length // len(pattern) + 1))[:length]


@st.composite
def float_pixels(draw: st.DrawFn) -> list[float]:
    """784 floats mostly, with a few odd values (NaN, infinities, out of range) planted, and other lengths."""
    length = draw(st.one_of(st.just(784), st.integers(min_value=0, max_value=1600)))
    values = [draw(st.floats(min_value=0.0, max_value=1.0, width=32))] * length
    for _ in range(draw(st.integers(min_value=0, max_value=3)) if length else 0):
        values[draw(st.integers(min_value=0, max_value=length - 1))] = draw(PIXEL_FLOATS)
    return values


@st.composite
def images(draw: st.DrawFn, encoded: st.SearchStrategy[bytes] | None = None) -> pb.Image:
    """One Image with any (or no) encoding set."""
    kind = draw(st.sampled_from(["pixels", "float_pixels", "encoded", "empty"]))
    if kind == "pixels":
        return pb.Image(pixels=draw(pixel_bytes()))
    if kind == "float_pixels":
        return pb.Image(float_pixels=pb.FloatPixels(values=draw(float_pixels())))
    if kind == "encoded":
        return pb.Image(encoded=draw(encoded if encoded is not None else st.binary(max_size=512)))
    return pb.Image()


@st.composite
def classify_requests(draw: st.DrawFn) -> pb.ClassifyRequest:
    """A ClassifyRequest with any selector, image, label and request id."""
    request = pb.ClassifyRequest(
        model_spec=draw(model_specs()),
        image=draw(images()),
        request_id=draw(st.one_of(st.just(""), st.text(max_size=20), st.just("r" * 300))),
    )
    if draw(st.booleans()):
        request.true_label = draw(st.integers(min_value=0, max_value=2**32 - 1))
    return request


@st.composite
def batch_requests(draw: st.DrawFn, max_images: int = 6) -> pb.ClassifyBatchRequest:
    """A ClassifyBatchRequest with 0..max_images images and any labels."""
    count = draw(st.integers(min_value=0, max_value=max_images))
    return pb.ClassifyBatchRequest(
        model_spec=draw(model_specs()),
        images=[draw(images()) for _ in range(count)],
        true_labels=draw(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=max_images + 1)),
        request_id=draw(st.one_of(st.just(""), st.text(max_size=20))),
    )


# --- image files -----------------------------------------------------------------------------

def digit_array(size: int = 28, seed: int = 0) -> np.ndarray:
    """A light-background picture of a thick dark stroke: a plausible hand-drawn '1'."""
    rng = np.random.default_rng(seed)
    canvas = np.full((size, size), 245, dtype=np.uint8)
    left, right = int(size * 0.42), int(size * 0.58)
    canvas[int(size * 0.15) : int(size * 0.85), left:right] = 20
    return np.clip(canvas.astype(int) + rng.integers(-5, 6, canvas.shape), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str, mode: str | None = None, **options: object) -> bytes:
    """An array as an image file of format `fmt` (PNG, JPEG, GIF, BMP, WEBP, TIFF)."""
    from PIL import Image

    picture = Image.fromarray(array)
    if mode is not None:
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


VALID_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")


def valid_files() -> dict[str, bytes]:
    """One small valid digit picture per accepted format (the seeds that mutations start from)."""
    digit = digit_array(64)
    return {fmt: encode(digit, fmt) for fmt in VALID_FORMATS}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims width x height (8-bit gray) with little or no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat or zlib.compress(b"\x00" * 64)) + (
        png_chunk(b"IEND", b"")
    )


def png_bomb(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of width x height white pixels: tiny file, huge decode."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A valid small JPEG whose frame header (SOF0) is patched to claim width x height."""
    data = bytearray(encode(digit_array(32), "JPEG"))
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    """A BMP whose info header claims width x height, followed by almost no pixel data."""
    data = bytearray(encode(digit_array(8), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def gif_frames(count: int) -> bytes:
    """An animated GIF of `count` small frames."""
    from PIL import Image

    frames = [Image.fromarray(np.roll(digit_array(28), shift, axis=1)) for shift in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=10, loop=0)
    return buffer.getvalue()


@dataclass(frozen=True)
class HostileImage:
    """A named malicious or odd image file and the outcome it must get: "invalid" (always
    INVALID_ARGUMENT), "ok" (always a prediction) or "any" (either, with a reason if refused)."""

    name: str
    build: Callable[[], bytes]
    outcome: str = "invalid"


def hostile_images() -> list[HostileImage]:
    """The hand-made hostile cases, cheap to build (the largest is a ~100 KB bomb)."""
    png = lambda: encode(digit_array(64), "PNG")  # noqa: E731
    jpeg = lambda: encode(digit_array(64), "JPEG")  # noqa: E731
    return [
        HostileImage("valid-digit-png-512", lambda: encode(digit_array(512), "PNG"), "ok"),
        HostileImage("valid-digit-jpeg-300", lambda: encode(digit_array(300), "JPEG"), "ok"),
        HostileImage("empty", lambda: b""),
        HostileImage("png-signature-only", lambda: PNG_SIGNATURE),
        HostileImage("png-truncated-in-header", lambda: png()[:20]),
        HostileImage("png-truncated-in-data", lambda: png()[: len(png()) // 2]),
        HostileImage("png-bad-crc", lambda: png()[:29] + bytes([png()[29] ^ 0xFF]) + png()[30:], "any"),
        HostileImage("png-corrupt-idat", lambda: png()[:45] + b"\x00" * 40 + png()[85:], "any"),
        HostileImage("png-zero-size", lambda: png_claiming(0, 0)),
        HostileImage("png-claims-65535-square", lambda: png_claiming(65535, 65535)),
        HostileImage("png-claims-2-billion-wide", lambda: png_claiming(2**31 - 1, 1)),
        HostileImage("png-bomb-20000-square", lambda: png_bomb(20000, 20000)),
        HostileImage("png-bomb-extreme-aspect", lambda: png_bomb(1_000_000, 1)),
        HostileImage("jpeg-truncated", lambda: jpeg()[: len(jpeg()) // 2], "any"),
        HostileImage("jpeg-header-only", lambda: jpeg()[:200]),
        HostileImage("jpeg-claims-65500-square", lambda: jpeg_claiming(65500, 65500)),
        HostileImage("bmp-claims-huge", lambda: bmp_claiming(100_000, 100_000)),
        HostileImage("bmp-claims-negative-width", lambda: bmp_claiming(-28, 28)),
        HostileImage("gif-200-frames", lambda: gif_frames(200), "any"),
        HostileImage("webp-garbage", lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16),
        HostileImage("blank-white-png", lambda: encode(np.full((28, 28), 255, np.uint8), "PNG")),
        HostileImage("blank-transparent-png", lambda: encode(np.zeros((28, 28), np.uint8), "PNG", mode="LA")),
        HostileImage("one-pixel-png", lambda: encode(np.zeros((1, 1), np.uint8), "PNG"), "any"),
        HostileImage("sixteen-bit-png", lambda: encode(digit_array(28).astype(np.uint16) * 257, "PNG"), "any"),
        HostileImage("cmyk-jpeg", lambda: encode(digit_array(32), "JPEG", mode="CMYK"), "any"),
        HostileImage("palette-png", lambda: encode(digit_array(32), "PNG", mode="P"), "any"),
        HostileImage("tiff-not-an-accepted-format", lambda: encode(digit_array(32), "TIFF"), "any"),
        HostileImage("text-file", lambda: b"this is not an image\n" * 10),
        HostileImage("random-bytes", lambda: np.random.default_rng(7).bytes(4096)),
    ]


def corpus_requests() -> list[tuple[str, Path]]:
    """(method, file) for every `tests/corpus/<Method>/<what>.<CODE>.bin`, sorted."""
    return sorted((path.parent.name, path) for path in CORPUS.glob("*/*.bin"))


def expected_code(path: Path) -> grpc.StatusCode:
    """The status code a corpus file's name promises: `<what>.<CODE>.bin`."""
    return grpc.StatusCode[path.name.split(".")[-2]]
