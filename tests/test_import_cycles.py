"""No two modules of our packages import each other, directly or around a longer loop, even
through an import inside a function (the trainer's loop.py and training.py once did). Read with
`ast`: nothing is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import imports_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "digits_server": ROOT / "server" / "src" / "digits_server",
    "digits_trainer": ROOT / "trainer" / "src" / "digits_trainer",
    "digits": ROOT / "client" / "src" / "digits",
}


def module_graph(package: str, read=lambda path: path.read_text()) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (packages' __init__ excluded: a
    package's __init__ re-exporting its modules is not a loop between them)."""
    root = PACKAGES[package]
    modules = {
        ".".join((package, *path.relative_to(root).with_suffix("").parts)): path
        for path in root.rglob("*.py") if path.name != "__init__.py"
    }
    return {
        module: {name for name in imports_of(read(path), module.rpartition(".")[0]) if name in modules} - {module}
        for module, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One loop per module that lies on one, as the chain that closes it."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(chain: list[str]) -> None:
        for nxt in sorted(graph[chain[-1]]):
            if nxt in chain:
                found.append(chain[chain.index(nxt):] + [nxt])
            elif nxt not in done:
                visit([*chain, nxt])
        done.add(chain[-1])

    for module in sorted(graph):
        if module not in done:
            visit([module])
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycles(package: str) -> None:
    loops = cycles(module_graph(package))
    assert not loops, "\n".join(" -> ".join(loop) for loop in loops)


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    root = PACKAGES["digits_trainer"]
    fake = {
        root / "loop.py": "def f():\n    from .training import split_validation\n",
        root / "training.py": "from .data import Dataset\n\ndef g():\n    from .loop import fit_loop\n",
    }
    loops = cycles(module_graph("digits_trainer", read=lambda path: fake.get(path, "")))
    assert ["digits_trainer.loop", "digits_trainer.training", "digits_trainer.loop"] in loops
