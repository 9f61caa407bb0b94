"""`workbench new DIR`: a new project that runs, from the template shipped in the package.

The template (`workbench/project_template/`) is a small working project: steps for an API that
emits, a background job and a cron job, tests through the `workbench` fixture, and a README with
the project's own commands. Only `$name` and `$requirement` in its text files are filled in.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

TEMPLATE = "project_template"
FILLED = {"pyproject.toml", "README.md"}  # files whose $placeholders are filled in
# dot files are shipped without their dot; a pyproject.toml with placeholders would be read as config
RENAMED = {"gitignore": ".gitignore", "pyproject.toml.in": "pyproject.toml"}
SKIPPED = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


class ScaffoldError(Exception):
    """The project cannot be created there; nothing was written."""


def requirement() -> str:
    """The dependency on this framework a new project gets: this release's minor series."""
    version = importlib.metadata.version("workbench-steps")
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return f">={major}.{minor},<{major}.{minor + 1}" if major == 0 else f">={major}.{minor},<{major + 1}"


def project_name(target: Path) -> str:
    """A distribution name from the folder's name (`My Shop` → `my-shop`)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", target.resolve().name).strip("-").lower()
    return name or "workbench-app"


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.name.endswith(".pyc"):
            continue
        rel = f"{prefix}{RENAMED.get(entry.name, entry.name)}"
        if entry.is_dir():
            out += _files(entry, rel + "/")
        else:
            out.append((rel, entry))
    return out


def create_project(target: Path) -> list[Path]:
    """Write the new project into `target` (missing or empty); returns the files written."""
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder; choose a new folder")
    if target.is_dir():
        present = sorted(p.name for p in target.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (", …" if len(present) > 5 else "")
            raise ScaffoldError(
                f"{target} is not empty (it holds {shown}); nothing was changed. "
                "Choose a new folder, or an empty one."
            )
    values = {"name": project_name(target), "requirement": requirement()}
    files = _files(importlib.resources.files("workbench") / TEMPLATE)
    written = []
    target.mkdir(parents=True, exist_ok=True)
    for rel, source in files:
        text = source.read_text(encoding="utf-8")
        if rel in FILLED:
            text = Template(text).substitute(values)
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
