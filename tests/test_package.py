"""The package's face: `from studybuddy import Settings, run` and `python -m studybuddy` keep working,
whatever was imported before (a subpackage may never shadow a name the package exports)."""

from __future__ import annotations

import subprocess
import sys

import studybuddy


def test_the_exported_names_are_the_library_entry_points_even_after_every_module_is_imported() -> None:
    script = (
        "import pkgutil, studybuddy\n"
        "for module in pkgutil.walk_packages(studybuddy.__path__, 'studybuddy.'):\n"
        "    if not module.name.startswith(('studybuddy.ui', 'studybuddy.__main__')):\n"
        "        __import__(module.name)\n"
        "from studybuddy import Settings, run\n"
        "print(Settings.__module__, run.__module__, studybuddy.run.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["studybuddy.config", "studybuddy.runs.runner", "run"]
    assert sorted(studybuddy.__all__) == sorted(n for n in studybuddy.__all__ if hasattr(studybuddy, n))


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "studybuddy", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"study-buddy, version {studybuddy.__version__}"
