"""Generate the Python gRPC code for every .proto under proto/ (with .pyi stubs).

Usage: python proto/generate.py [--out DIR]

The digits.v1 API is generated into the client package (client/src), which the
server imports too; the ecosystem's protocols (Open Inference Protocol v2, TensorFlow
Serving) are server-only and go into the server package. The generated files are committed
and tests/test_codegen.py fails when they are stale.
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
    ("digits_server/apis/inference_v2.proto", "server/src"),
    ("digits_server/apis/tensorflow_serving.proto", "server/src"),
]
# Imports resolved from an installed package's generated modules instead of from proto/:
# TensorFlow's own messages. The server imports tensorflow, so a second copy of them would
# claim the same names in the descriptor pool and crash at import.
INSTALLED_IMPORTS: dict[str, tuple[str, ...]] = {
    "digits_server/apis/tensorflow_serving.proto": (
        "tensorflow.core.framework.tensor_pb2",
        "tensorflow.core.protobuf.error_codes_pb2",
        "tensorflow.core.protobuf.meta_graph_pb2",
    ),
}


def embedded_descriptors(source: str) -> list:
    """The FileDescriptorProtos a generated *_pb2.py registers, read from its source without running it:
    the bytes literals it passes to AddSerializedFile."""
    import ast

    from google.protobuf import descriptor_pb2

    return [
        descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(node.args[0]))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile"
    ]


def installed_descriptor_set(modules: tuple[str, ...], path: Path) -> Path:
    """Write the FileDescriptorSet of installed generated modules and the generated modules they
    import (not protobuf's own, which protoc has) to `path`.

    The modules are read, not imported (importing tensorflow.* would load all of TensorFlow): each
    holds its file's serialized descriptor as the bytes literal passed to AddSerializedFile.
    """
    import ast
    import importlib.util

    from google.protobuf import descriptor_pb2

    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    seen: set[str] = set()

    def add(module: str) -> None:  # dependencies first, each module once
        if module in seen or module.startswith("google.protobuf"):
            return
        seen.add(module)
        top, *rest = module.split(".")
        package = importlib.util.find_spec(top)  # locates without running the package
        if package is None or not package.submodule_search_locations:
            raise RuntimeError(f"{module}: package {top} is not installed")
        source = Path(package.submodule_search_locations[0], *rest).with_suffix(".py").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.name.endswith("_pb2"):
                        add(f"{node.module}.{alias.name}")
        for proto in embedded_descriptors(source):
            files.setdefault(proto.name, proto)

    for module in modules:
        add(module)
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString())
    return path


def generate(out_root: Path = REPO_ROOT) -> list[Path]:
    """Run protoc for every target; returns the files written."""
    import importlib.util
    import subprocess
    import tempfile

    # protoc runs in a child process: in-process it crashes when TensorFlow (its own protobuf
    # C++ runtime) is loaded already, e.g. in a test session. Only codegen needs grpcio-tools.
    grpc_tools = importlib.util.find_spec("grpc_tools")
    if grpc_tools is None or not grpc_tools.submodule_search_locations:
        raise RuntimeError("grpcio-tools is not installed")
    well_known = Path(grpc_tools.submodule_search_locations[0]) / "_proto"
    written: list[Path] = []
    for proto, out in TARGETS:
        dest = out_root / out
        dest.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={dest}",
            f"--pyi_out={dest}",
            f"--grpc_python_out={dest}",
            str(PROTO_ROOT / proto),
        ]
        scratch = tempfile.TemporaryDirectory()
        if proto in INSTALLED_IMPORTS:
            imports = installed_descriptor_set(INSTALLED_IMPORTS[proto], Path(scratch.name) / "imports.pb")
            args.insert(3, f"--descriptor_set_in={imports}")
        with scratch:
            done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"protoc failed for {proto}: {done.stderr.strip()}")
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
