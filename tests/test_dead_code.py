"""No dead code in the serving core and the trainer: every public function and method defined there
is named somewhere in the product's code (server, trainer, client, bench, deploy), not only in
tests. Read with `ast`: a name used as a call, attribute, import or string (getattr, entry points)
counts. Once dead here: core/batching.py `queued_images`, core/feedback.py `seen_labels`, trainer
model.py `scale_images`, data.py `save_npz`, recipes.py `as_dict`."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("server/src", "trainer/src", "client/src", "bench", "deploy")
CHECKED = ("server/src/digits_server/core", "trainer/src/digits_trainer")
#: Kept on purpose, each with the reason.
ALLOWED = {
    "traces": "core/runtimes.py: the XLA runtime's tracing count, the probe tests/server/test_runtime.py "
              "uses to show serving never retraces (TensorFlow offers no other way to see it)",
}


def names_used(paths: Iterable[Path]) -> set[str]:
    """Every name, attribute, imported name and identifier-like string in `paths`."""
    used: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom):
                used.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                used.add(node.value)
    return used


def unused_definitions(checked: Iterable[Path], used: set[str]) -> list[str]:
    """`path:line name` of each public function or method in `checked` whose name `used` lacks."""
    found = []
    for path in checked:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_")
                    and node.name not in used and node.name not in ALLOWED):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{shown}:{node.lineno} {node.name}")
    return found


def python_files(folders: Iterable[str]) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if not p.name.endswith("_pb2.py"))


def test_every_public_function_of_core_and_trainer_is_used_by_the_product() -> None:
    dead = unused_definitions(python_files(CHECKED), names_used(python_files(PRODUCT)))
    assert not dead, "defined, used by nothing but tests (delete, or use):\n" + "\n".join(dead)


def test_the_check_finds_a_property_only_tests_read(tmp_path: Path) -> None:
    module = tmp_path / "store.py"
    module.write_text("class Store:\n    @property\n    def seen_labels(self) -> int:\n        return 0\n"
                      "    def give(self) -> None:\n        pass\n")
    user = tmp_path / "user.py"
    user.write_text("def serve(store):\n    store.give()\n")
    dead = unused_definitions([module], names_used([user]))
    assert [line.rpartition(" ")[2] for line in dead] == ["seen_labels"]
