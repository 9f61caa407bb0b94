"""`workbench check`: every step file validated on its own, every error reported with its file and key,
a non-zero exit for a project's CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import PET_STEPS, write_step

EVENT_HANDLER = "\n\nasync def handler(data, ctx):\n    pass\n"
GOOD = 'config = {"type": "event", "name": "Fine", "subscribes": ["a"]}\n' + EVENT_HANDLER
BAD_KEY = 'config = {"type": "event", "name": "Typo", "subscribe": ["a"]}\n' + EVENT_HANDLER
BAD_PATH = (
    'config = {"type": "api", "name": "Route", "method": "GET", "path": "pets"}\n\n\n'
    "async def handler(request, ctx):\n    pass\n"
)
BROKEN = "config = {\n"


def check(steps: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", "check", "--steps", str(steps)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_pet_store_is_valid() -> None:
    done = check(PET_STEPS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok: 8 steps in {PET_STEPS.resolve()}\n"


def test_every_invalid_file_is_named_with_its_key(tmp_path: Path) -> None:
    write_step(tmp_path, "fine", GOOD)
    typo = write_step(tmp_path, "typo", BAD_KEY)
    route = write_step(tmp_path, "route", BAD_PATH)
    broken = write_step(tmp_path, "zbroken", BROKEN)
    done = check(tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"error: {route.resolve()}: config['path']: 'pets' must start with /")
    assert lines[1].startswith(f"error: {typo.resolve()}: config['subscribe']: unknown key for a event step")
    assert lines[2].startswith(f"error: {broken.resolve()}: failed to import: SyntaxError")
    assert lines[3] == f"3 invalid step files in {tmp_path.resolve()}"
    assert len(lines) == 4 and done.stdout == ""


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    done = check(tmp_path / "nope")
    assert done.returncode == 1
    assert "steps folder does not exist" in done.stderr
