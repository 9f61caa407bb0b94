"""`workbench new DIR`: the project it writes, and the folders it refuses (changing nothing there).
The generated project is run for real, from an installed wheel, in test_package.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.scaffold import ScaffoldError, create_project, project_name, requirement

FILES = [
    ".gitignore", "README.md", "pyproject.toml", "steps/orders/confirm_order_step.py",
    "steps/orders/daily_report_step.py", "steps/orders/get_order_step.py", "steps/orders/models.py",
    "steps/orders/place_order_step.py", "tests/test_orders.py",
]  # fmt: skip


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_new_project_has_steps_tests_and_its_own_readme(tmp_path: Path) -> None:
    target = tmp_path / "My Shop"
    written = create_project(target)
    assert sorted(str(p.relative_to(target)) for p in written) == FILES == listing(target)
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "my-shop"' in pyproject
    assert f'dependencies = ["workbench-steps{requirement()}"]' in pyproject
    assert "$" not in pyproject
    readme = (target / "README.md").read_text()
    assert readme.startswith("# my-shop\n\n```bash\nworkbench dev")
    assert "pytest" in readme.split("```")[1]
    assert "$REDIS_URL" in readme  # the template's escaped dollar, filled in as one


def test_the_requirement_is_this_release_series() -> None:
    import importlib.metadata

    major, minor = importlib.metadata.version("workbench-steps").split(".")[:2]
    expected = (
        f">={major}.{minor},<{major}.{int(minor) + 1}"
        if major == "0"
        else f">={major}.{minor},<{int(major) + 1}"
    )
    assert requirement() == expected


@pytest.mark.parametrize(
    ("folder", "name"), [("shop", "shop"), ("My Shop!", "my-shop"), ("__", "workbench-app")]
)
def test_project_names(tmp_path: Path, folder: str, name: str) -> None:
    assert project_name(tmp_path / folder) == name


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    create_project(tmp_path / "empty")
    assert listing(tmp_path / "empty") == FILES


def test_a_folder_with_anything_in_it_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match=r"is not empty \(it holds notes.txt, sub\); nothing was changed"):
        create_project(target)
    assert listing(target) == ["notes.txt"] and (target / "sub").is_dir()
    assert (target / "notes.txt").read_text() == "mine"


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScaffoldError, match="exists and is not a folder"):
        create_project(tmp_path / "file")


def test_the_command_says_what_to_do_next_and_refuses_with_exit_2(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "workbench", "new", str(tmp_path / "app")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "workbench dev" in done.stdout and "pytest" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: {tmp_path / 'app'} is not empty")
