"""Reading a package's imports with `ast` (nothing is imported): the layer and module-cycle tests."""

from __future__ import annotations

import ast


def imports_of(source: str, package: str = "") -> set[str]:
    """Every module an `import` or `from ... import` names (module level or inside a function),
    including `from pkg import module`; relative imports resolved against `package` (the dotted
    package the source lives in). `if TYPE_CHECKING:` imports never run, so they are left out."""
    found: set[str] = set()
    tree = ast.parse(source)
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found
