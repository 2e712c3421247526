"""Uploaded-image scenarios for the harness: PNG files made at run time with Pillow, and the
server's decode + preprocessing cost per image measured in-process (`core/imaging.py`).

    python bench/pictures.py --out DIR [--data FILE.npz]     # writes the PNGs, prints JSON costs
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

PICTURES = {"png28": "a 28x28 MNIST digit as an 8-bit grayscale PNG",
            "png200": "a 200x200 scanned-looking digit: dark ink on light paper, margins, noise"}


def digit(data: Path | None) -> np.ndarray:
    """One real test digit (white ink on black), or a drawn 7 without data."""
    if data is not None and data.is_file():
        with np.load(data) as loaded:
            return np.asarray(loaded["x_test"][0], dtype=np.uint8)
    image = np.zeros((28, 28), np.uint8)
    image[6:9, 6:22] = 255
    for row in range(9, 23):
        image[row, 21 - (row - 9) // 2: 24 - (row - 9) // 2] = 255
    return image


def pngs(image: np.ndarray) -> dict[str, bytes]:
    """The two uploads of one digit, as PNG bytes."""
    from PIL import Image

    def encoded(picture: "Image.Image") -> bytes:
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()

    small = Image.fromarray(image, mode="L")
    ink = small.resize((120, 120), Image.Resampling.BICUBIC)
    paper = np.random.default_rng(0).normal(232, 6, (200, 200))  # off-white page with scanner noise
    page = paper.copy()
    glyph = np.asarray(ink, dtype=np.float64) / 255.0
    page[30:150, 52:172] = paper[30:150, 52:172] * (1 - glyph) + 25 * glyph  # off-centre, wide margins
    scan = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), mode="L")
    return {"png28": encoded(small), "png200": encoded(scan)}


def write(out: Path, data: Path | None) -> dict[str, Path]:
    """Write the PNGs into `out`; {name: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in pngs(digit(data)).items():
        paths[name] = out / f"{name}.png"
        paths[name].write_bytes(content)
    return paths


def cost_us(function, argument, seconds: float = 0.5) -> float:
    """Microseconds per call of `function(argument)`, after a warm-up call."""
    function(argument)
    calls, started = 0, time.perf_counter()
    while calls < 20 or time.perf_counter() - started < seconds:
        function(argument)
        calls += 1
    return 1e6 * (time.perf_counter() - started) / calls


def costs(paths: dict[str, Path]) -> dict[str, dict]:
    """Per picture: bytes, decode (Pillow -> gray levels) and full preprocessing cost in us."""
    from digits import imaging as mnist_imaging
    from digits_server.core import imaging

    found = {}
    for name, path in paths.items():
        data = path.read_bytes()
        found[name] = {
            "bytes": len(data), "what": PICTURES[name],
            "decode_us": round(cost_us(mnist_imaging.decode_grayscale, data), 1),
            "decode_and_preprocess_us": round(cost_us(lambda d: imaging.from_encoded(d, "image.encoded"), data), 1),
            "raw_pixels_us": round(cost_us(lambda d: imaging.from_pixels(d, "image.pixels"), bytes(784)), 2),
        }
    return found


def main(argv: list[str] | None = None) -> int:
    """Write the PNGs, print their costs as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args(argv)
    paths = write(args.out, args.data)
    json.dump({"paths": {k: str(v) for k, v in paths.items()}, "costs": costs(paths)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
