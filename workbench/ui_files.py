"""Where the workbench UI's files are: `templates/` and `static/`, as package data.

The repository keeps them at its top level (beside `workbench/`); the build maps them into the
package as `workbench/templates` and `workbench/static` (see `[tool.setuptools.package-dir]` in
pyproject.toml), so an installed Workbench finds them through `importlib.resources`. In a source
checkout (an editable install, or the test suite run from the repository) the package directory
has no copy of them, and the same lookup finds them beside the package instead.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path

UI_FOLDERS = ("templates", "static")


@cache
def ui_dir(name: str) -> Path:
    """The folder `templates` or `static` as a filesystem path (Jinja and the static router need one)."""
    if name not in UI_FOLDERS:
        raise ValueError(f"not a UI folder: {name!r}")
    package: Traversable = importlib.resources.files("workbench")
    for candidate in (package / name, package / ".." / name):
        if candidate.is_dir():
            return Path(str(candidate)).resolve()
    raise FileNotFoundError(
        f"the workbench UI's {name}/ folder is missing from the installed package ({package}); "
        "reinstall Workbench from a wheel or the source tree"
    )
