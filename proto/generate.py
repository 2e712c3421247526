"""Generate the Python gRPC code for every .proto under proto/ (with .pyi stubs).

Usage: python proto/generate.py [--out DIR]

The digits.v1 API is generated into the client package (client/src), which the
server imports too; the generated files are committed and
tests/test_codegen.py fails when they are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
# (proto file relative to PROTO_ROOT, output root relative to the repository)
TARGETS: list[tuple[str, str]] = [
    ("digits/v1/digits.proto", "client/src"),
]


def generate(out_root: Path = REPO_ROOT) -> list[Path]:
    """Run protoc for every target; returns the files written."""
    from grpc_tools import protoc  # imported here: only codegen needs grpcio-tools
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    written: list[Path] = []
    for proto, out in TARGETS:
        dest = out_root / out
        dest.mkdir(parents=True, exist_ok=True)
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={dest}",
            f"--pyi_out={dest}",
            f"--grpc_python_out={dest}",
            str(PROTO_ROOT / proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")
        stem = (dest / proto).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            written.append(Path(f"{stem}{suffix}"))
        package = dest / Path(proto).parent
        while package != dest:
            (package / "__init__.py").touch()
            package = package.parent
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="repository root to write under")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
