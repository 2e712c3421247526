"""The package's layers hold: each layer imports only itself and the layers below it
(LAYERS, bottom first), and the transport-free layers never reach gRPC or generated protobuf code.

Walks the source with `ast` (nothing is imported) and follows every `digits_server` import,
module-level or inside a function, so an indirect path (core -> x -> grpc) fails too. Imports of
the client package `digits` (its pure statistics are shared) are followed as well, with the
packages that importing them runs (`digits/__init__.py`); `if TYPE_CHECKING:` imports never run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import imports_of

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


# Bottom first. A module may import its own layer and those below; `digits_server` itself (the
# package docstring and __version__) sits under every layer. `settings` is the one settings class
# (it imports nothing of ours); core does not know it: app.py turns settings into core's options.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("settings",),
    ("observability",),
    ("experiments",),
    ("transport",),
    ("security",),
    ("apis",),
    ("protocols",),
    ("app", "cli", "health_probe", "__main__"),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of a `digits_server.<part>...` module; None for the package itself and
    for modules outside digits_server."""
    parts = module.split(".")
    if parts[0] != "digits_server" or len(parts) == 1:
        return None
    return next((i for i, layer in enumerate(LAYERS) if parts[1] in layer), -1)


def upward_imports(read=lambda path: path.read_text()) -> list[str]:
    """`importer -> imported` for every import of a layer above the importer's (or of a module
    LAYERS does not place)."""
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "digits_server." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        own = layer_of(module)
        if own is None:
            continue
        for name in sorted(imports_of(read(path), module.rpartition(".")[0])):
            target = layer_of(name) if module_path(name) is not None else None
            if target is not None and (target == -1 or own == -1 or target > own):
                wrong.append(f"{module} -> {name}")
    return wrong


def test_every_module_imports_only_its_layer_and_those_below() -> None:
    wrong = upward_imports()
    assert not wrong, "imports reaching up the layers:\n" + "\n".join(wrong)


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.stem for path in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    placed = {part for layer in LAYERS for part in layer}
    assert parts - {"__init__"} == placed


def test_the_layer_check_catches_core_importing_upwards() -> None:
    """The check itself can fail: core importing the metrics (as core/feedback.py did) or the
    settings (as core/batching.py did) is reported, including from inside a function."""
    fake = {
        PACKAGE / "core" / "feedback.py": "from digits_server.observability.metrics import ServerMetrics\n",
        PACKAGE / "core" / "batching.py": "def f():\n    from digits_server import settings\n",
    }
    wrong = upward_imports(read=lambda path: fake.get(path, ""))
    assert wrong == [
        "digits_server.core.batching -> digits_server.settings",
        "digits_server.core.feedback -> digits_server.observability.metrics",
    ]
