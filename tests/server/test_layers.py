"""The package's layers hold: the transport-free layers never reach gRPC or generated protobuf code.

Walks the source with `ast` (nothing is imported) and follows every `digits_server` import,
module-level or inside a function, so an indirect path (core -> x -> grpc) fails too. Imports of
the client package `digits` (its pure statistics are shared) are followed as well, with the
packages that importing them runs (`digits/__init__.py`); `if TYPE_CHECKING:` imports never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "src" / "digits_server"
CLIENT = Path(__file__).resolve().parents[2] / "client" / "src" / "digits"
TRANSPORT_FREE = ("core", "experiments", "observability")
FORBIDDEN = ("grpc", "google.protobuf", "digits.v1", "digits_server.apis", "digits_server.transport",
             "digits_server.protocols", "digits_server.app", "digits_server.cli")


def module_path(name: str) -> Path | None:
    """The source file of a digits_server or digits module, or None for other packages."""
    root = name.split(".")[0]
    if root not in ("digits_server", "digits"):
        return None
    parts = name.split(".")[1:]
    candidate = (PACKAGE if root == "digits_server" else CLIENT).joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def imports_of(source: str) -> set[str]:
    """Every module an `import` or `from ... import` names, including `from pkg import module`."""
    found: set[str] = set()
    tree = ast.parse(source)
    for block in ast.walk(tree):  # typing-only imports never run
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def forbidden_paths(start: str, read=lambda path: path.read_text()) -> list[list[str]]:
    """Import chains from `start` to a forbidden module, following digits_server modules."""
    chains: list[list[str]] = []
    seen: set[str] = set()
    stack = [[start]]
    while stack:
        chain = stack.pop()
        path = module_path(chain[-1])
        if path is None or chain[-1] in seen:
            continue
        seen.add(chain[-1])
        for name in sorted(imports_of(read(path))):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                chains.append([*chain, name])
            elif module_path(name) is not None:
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                    stack.append([*chain, ".".join(parts[:depth])])
    return chains


def transport_free_modules() -> list[str]:
    return sorted(
        "digits_server." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for layer in TRANSPORT_FREE
        for path in (PACKAGE / layer).glob("*.py")
    )


@pytest.mark.parametrize("module", transport_free_modules())
def test_transport_free_module_never_reaches_grpc(module: str) -> None:
    chains = forbidden_paths(module)
    assert not chains, "\n".join(" -> ".join(chain) for chain in chains)


def test_every_layer_has_modules() -> None:
    modules = transport_free_modules()
    for layer in TRANSPORT_FREE:
        assert any(m.startswith(f"digits_server.{layer}.") for m in modules), layer
    assert "digits_server.core.dataplane" in modules


def test_walker_finds_an_indirect_grpc_import() -> None:
    """The check itself can fail: a core module that reaches grpc through another one is caught."""
    fake = {
        PACKAGE / "core" / "dataplane.py": "from digits_server.core import domain\n",
        PACKAGE / "core" / "domain.py": "def f():\n    from digits_server.transport.codec import x\n",
    }
    chains = forbidden_paths("digits_server.core.dataplane", read=lambda path: fake.get(path, ""))
    assert ["digits_server.core.dataplane", "digits_server.core.domain", "digits_server.transport.codec"] in chains


def test_top_level_holds_only_entry_points_and_layers() -> None:
    """The flat package is gone: top-level modules are the entry points, the rest are layers."""
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__", "app", "cli", "health_probe", "settings"]
    layers = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file())
    assert layers == ["apis", "core", "experiments", "observability", "protocols", "security", "transport"]


def test_walker_follows_the_client_package_and_its_init() -> None:
    """Importing digits.experiments.statistics runs digits/__init__.py: an eager gRPC import there is caught,
    a TYPE_CHECKING-only one is not."""
    eager = {
        PACKAGE / "experiments" / "report.py": "from digits.experiments import statistics\n",
        CLIENT / "__init__.py": "from digits.client import DigitsClient\n",
        CLIENT / "client.py": "import grpc\n",
    }
    chains = forbidden_paths("digits_server.experiments.report", read=lambda path: eager.get(path, ""))
    assert ["digits_server.experiments.report", "digits", "digits.client", "grpc"] in chains
    lazy = {**eager, CLIENT / "__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import grpc\n"}
    assert forbidden_paths("digits_server.experiments.report", read=lambda path: lazy.get(path, "")) == []
