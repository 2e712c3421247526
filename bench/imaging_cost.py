"""Decode + preprocessing CPU per uploaded image: the float path (the whole image in float32, as
before issue 14's round 4) against the uint8 fast path `digits.imaging.preprocess` now takes,
interleaved (before, after, before, ...), median of the rounds, CPU time of this process.

    python bench/imaging_cost.py [--data FILE.npz] [--rounds 7]

The pictures are bench/pictures.py's uploads (a 28x28 PNG, a 200x200 scanned-looking PNG), the
scan as a JPEG, and a 2000x2000 photo-sized JPEG of the same scan.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import pictures


def float_path(data: bytes) -> np.ndarray:
    """The preprocessing before the fast path: float32 gray image, `ink_from_gray`, `fit_and_centre`."""
    from PIL import Image

    from digits import imaging

    gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    return imaging.fit_and_centre(imaging.ink_from_gray(gray))


def cpu_us(function: Callable[[bytes], np.ndarray], data: bytes, calls: int) -> float:
    """CPU microseconds per call (process time), after one warm-up call."""
    function(data)
    started = time.process_time()
    for _ in range(calls):
        function(data)
    return 1e6 * (time.process_time() - started) / calls


def uploads(data: Path | None) -> dict[str, bytes]:
    """name -> file bytes."""
    from PIL import Image

    found = pictures.pngs(pictures.digit(data))
    scan = Image.open(io.BytesIO(found["png200"]))
    for name, picture in (("jpeg200", scan), ("jpeg2000", scan.resize((2000, 2000), Image.Resampling.BICUBIC))):
        out = io.BytesIO()
        picture.convert("RGB").save(out, "JPEG", quality=90)
        found[name] = out.getvalue()
    return found


def main(argv: list[str] | None = None) -> int:
    """Print one line per picture: bytes, before and after (median us), the ratio, and whether the digits agree."""
    from digits import imaging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist-9k.npz")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    for name, data in uploads(args.data).items():
        calls = 10 if name == "jpeg2000" else 200
        before, after = [], []
        for _ in range(args.rounds):
            before.append(cpu_us(float_path, data, calls))
            after.append(cpu_us(imaging.preprocess, data, calls))
        difference = np.abs(float_path(data).astype(int) - imaging.preprocess(data)).mean()
        b, a = statistics.median(before), statistics.median(after)
        print(f"{name:<9} {len(data):>7} B  before {b:8.0f} us  after {a:7.0f} us  ({a / b:.2f}x)  "
              f"mean |pixel difference| {difference:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
