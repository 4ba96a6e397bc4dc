"""The package's layers point down: every module imports only from its own package or from packages below it,
and no modules import one another in a circle. Read from the source, so the rule holds without a reviewer.

    cli -> ui -> run -> notes -> youtube -> egress -> store -> base (the modules at the package root)

Every import counts: at the top, inside functions (the lazy ones that keep `--help` fast) and for type
checking only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import studybuddy

LAYERS = ("base", "store", "egress", "youtube", "notes", "run", "ui", "cli")
ENTRY_POINTS = frozenset({"studybuddy", "studybuddy.__main__"})  # the package's face may name any layer


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


class Package:
    """The modules of a package folder and the studybuddy modules each one imports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = {self._name(path): path for path in sorted(root.rglob("*.py"))}

    def _name(self, path: Path) -> str:
        parts = path.relative_to(self.root.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def imports(self, module: str) -> Iterator[tuple[int, str]]:
        """(line, module) of every studybuddy module `module` imports."""
        path = self.paths[module]
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    base = package.split(".")[: package.count(".") + 2 - node.level]
                    target = ".".join([*base, target] if target else base)
                for alias in node.names:  # `from studybuddy.run import pipeline` names a module
                    name = f"{target}.{alias.name}"
                    yield node.lineno, self._module(name if name in self.paths else target)
            elif isinstance(node, ast.Import):
                yield from ((node.lineno, self._module(alias.name)) for alias in node.names)

    def _module(self, name: str) -> str:
        while name not in self.paths and "." in name:
            name = name.rpartition(".")[0]
        return name

    def upward(self) -> list[str]:
        found = set()
        for module in self.paths.keys() - ENTRY_POINTS:
            mine = LAYERS.index(layer_of(module))
            for line, target in self.imports(module):
                if target in self.paths and LAYERS.index(layer_of(target)) > mine:
                    found.add(f"{module}:{line} imports {target} ({layer_of(target)})")
        return sorted(found)

    def circles(self) -> list[str]:
        graph = {
            module: {target for _line, target in self.imports(module)}
            & self.paths.keys() - ENTRY_POINTS - {module}
            for module in self.paths.keys() - ENTRY_POINTS
        }
        found: list[str] = []
        finished: set[str] = set()

        def visit(module: str, trail: list[str]) -> None:
            if module in trail:
                found.append(" -> ".join([*trail[trail.index(module) :], module]))
            elif module not in finished:
                for target in sorted(graph[module]):
                    visit(target, [*trail, module])
                finished.add(module)

        for module in sorted(graph):
            visit(module, [])
        return found


def test_every_import_points_down_or_stays_in_its_package() -> None:
    assert Package(Path(studybuddy.__file__).parent).upward() == []


def test_no_modules_import_one_another_in_a_circle() -> None:
    assert Package(Path(studybuddy.__file__).parent).circles() == []


def test_the_checks_name_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    root = tmp_path / "studybuddy"
    for name, text in {
        "__init__.py": "",
        "errors.py": "",
        "egress/__init__.py": "",
        "egress/tor.py": "from studybuddy.run.pipeline import Pipeline\nfrom ..errors import X\n",
        "run/__init__.py": "",
        "run/pipeline.py": "from . import workers\n",
        "run/workers.py": "def f():\n    from studybuddy.run import pipeline\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    package = Package(root)
    assert package.upward() == ["studybuddy.egress.tor:1 imports studybuddy.run.pipeline (run)"]
    assert package.circles() == [
        "studybuddy.run.pipeline -> studybuddy.run.workers -> studybuddy.run.pipeline"
    ]
