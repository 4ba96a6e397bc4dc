"""The command line: Click commands and options over the library, nothing else.

`main` is the console script `study-buddy` (and `python -m studybuddy`).
"""

from studybuddy.cli.main import main

__all__ = ["main"]
