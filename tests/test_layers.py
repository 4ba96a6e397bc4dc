"""The package's layers point down: every module imports only from its own package or from packages below it,
and no modules import one another in a circle; and a module's `__all__` names only what it defines. Read
from the source, so the rules hold without a reviewer.

    cli -> ui -> runs -> notes -> youtube -> egress -> store -> base (the modules at the package root)

Every import counts: at the top, inside functions (the lazy ones that keep `--help` fast) and for type
checking only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import studybuddy

LAYERS = ("base", "store", "egress", "youtube", "notes", "runs", "ui", "cli")
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
                for alias in node.names:  # `from studybuddy.runs import pipeline` names a module
                    name = f"{target}.{alias.name}"
                    yield node.lineno, self._module(name if name in self.paths else target)
            elif isinstance(node, ast.Import):
                yield from ((node.lineno, self._module(alias.name)) for alias in node.names)

    def _module(self, name: str) -> str:
        while name not in self.paths and "." in name:
            name = name.rpartition(".")[0]
        return name

    def borrowed_exports(self) -> list[str]:
        """Names a module's `__all__` exports without defining them (a package's face is exempt)."""
        found = []
        for module in sorted(self.paths.keys() - ENTRY_POINTS):
            tree = ast.parse(self.paths[module].read_text(encoding="utf-8"))
            defined: set[str] = set()
            exported: list[str] = []
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    defined.add(node.name)
                targets = node.targets if isinstance(node, ast.Assign) else []
                targets += [node.target] if isinstance(node, ast.AnnAssign) else []
                for target in targets:
                    if isinstance(target, ast.Name):
                        defined.add(target.id)
                        if target.id == "__all__" and isinstance(node.value, ast.List | ast.Tuple):
                            exported = [ast.literal_eval(element) for element in node.value.elts]
            package = self.paths[module].name == "__init__.py"
            found += [
                f"{module} exports {name}"
                for name in exported
                if name not in defined and not (package and self._defined_below(module, name))
            ]
        return found

    def _defined_below(self, package: str, name: str) -> bool:
        """Whether a module of `package` defines `name` (a package may export its own modules' names)."""
        return any(
            module.startswith(f"{package}.")
            and re.search(rf"^(def|class) {name}\b|^{name} =", path.read_text(), re.M)
            for module, path in self.paths.items()
        )

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


def test_a_module_exports_only_what_it_defines() -> None:
    assert Package(Path(studybuddy.__file__).parent).borrowed_exports() == []


def test_the_checks_name_an_upward_import_a_circle_and_a_borrowed_export(tmp_path: Path) -> None:
    root = tmp_path / "studybuddy"
    for name, text in {
        "__init__.py": "",
        "errors.py": "",
        "egress/__init__.py": "from studybuddy.egress.tor import f\n__all__ = ['f']\n",
        "egress/tor.py": "from studybuddy.runs.pipeline import P\nfrom ..errors import X\n"
        "__all__ = ['X', 'f']\ndef f():\n    pass\n",
        "runs/__init__.py": "",
        "runs/pipeline.py": "from . import workers\n",
        "runs/workers.py": "def f():\n    from studybuddy.runs import pipeline\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    package = Package(root)
    assert package.upward() == ["studybuddy.egress.tor:1 imports studybuddy.runs.pipeline (runs)"]
    assert package.circles() == [
        "studybuddy.runs.pipeline -> studybuddy.runs.workers -> studybuddy.runs.pipeline"
    ]
    assert package.borrowed_exports() == ["studybuddy.egress.tor exports X"]  # the package may export f
