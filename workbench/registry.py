"""The registry: every step discovered from the step files, and the indexes the runtime needs.

Web and worker processes build it from the same files, so only data crosses processes.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .step_config import ApiStep, BackgroundStep, CronStep, EventStep, Step, StepError, build_step

# ours, and Motia's second spelling (`create_pet.step.py`); `deletion_reaper.cron_step.py` is the first
STEP_GLOBS = ("**/*_step.py", "**/*.step.py")


@dataclass
class Registry:
    steps_dir: Path
    steps: dict[str, Step] = field(default_factory=dict)
    subscribers: dict[str, list[BackgroundStep]] = field(default_factory=lambda: defaultdict(list))

    def add(self, step: Step) -> None:
        if step.name in self.steps:
            other = self.steps[step.name].file
            raise StepError(step.file, "name", f"step name {step.name!r} is already used by {other}")
        if isinstance(step, ApiStep):
            for existing in self.api_steps():
                if existing.method == step.method and _same_route(existing.path, step.path):
                    raise StepError(
                        step.file,
                        "path",
                        f"{step.method} {step.path} is already served by {existing.name} ({existing.file})",
                    )
        self.steps[step.name] = step
        if isinstance(step, BackgroundStep):  # only queued kinds run for an event
            for topic in step.subscriptions():
                self.subscribers[topic].append(step)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps.values())

    def __len__(self) -> int:
        return len(self.steps)

    def get(self, name: str) -> Step | None:
        return self.steps.get(name)

    def api_steps(self) -> list[ApiStep]:
        return [s for s in self.steps.values() if isinstance(s, ApiStep)]

    def event_steps(self) -> list[EventStep]:
        return [s for s in self.steps.values() if isinstance(s, EventStep)]

    def cron_steps(self) -> list[CronStep]:
        return [s for s in self.steps.values() if isinstance(s, CronStep)]

    def background_steps(self) -> list[BackgroundStep]:
        """Steps whose runs are queued jobs (what a worker runs, what can become a dead letter)."""
        return [s for s in self.steps.values() if isinstance(s, BackgroundStep)]

    def subscribers_of(self, topic: str) -> list[BackgroundStep]:
        return list(self.subscribers.get(topic, ()))

    def topics(self) -> list[str]:
        """Every topic some step emits or subscribes to, for the emit form."""
        found: set[str] = set(self.subscribers)
        for step in self.steps.values():
            found.update(step.emits)
        return sorted(found)


def _same_route(a: str, b: str) -> bool:
    """`/pets/{id}` and `/pets/{petId}` are the same route."""
    norm = [
        "/".join("{}" if part.startswith("{") else part for part in p.strip("/").split("/")) for p in (a, b)
    ]
    return norm[0] == norm[1]


def step_files(steps_dir: Path) -> list[Path]:
    found = {p for pattern in STEP_GLOBS for p in steps_dir.glob(pattern) if p.is_file()}
    return sorted(p for p in found if "__pycache__" not in p.parts)


def module_name(path: Path, project_root: Path) -> str:
    """A step's module name, dotted from the project's folder as Motia names them, so `__package__`
    is the step's folder: `src/python/create_pet_step.py` → `src.python.create_pet_step`, where
    `from .types import Pet` finds `src/python/types.py`. Dots in a file name become underscores
    (`deletion_reaper.cron_step.py` → `deletion_reaper_cron_step`)."""
    rel = path.relative_to(project_root)
    stem = rel.name.removesuffix(".py").replace(".", "_")
    return ".".join([*rel.parent.parts, stem])


def _load_module(path: Path, steps_dir: Path) -> object:
    name = module_name(path, steps_dir.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StepError(path, None, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        if isinstance(exc, SyntaxError):
            line = exc.lineno
            detail = f"{type(exc).__name__}: {exc.msg}"
        else:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
            line = frames[-1].lineno if frames else None
            detail = f"{type(exc).__name__}: {exc}"
        where = f" (line {line})" if line else ""
        raise StepError(path, None, f"failed to import: {detail}{where}") from exc
    return module


def discover(steps_dir: Path | str) -> Registry:
    """Load and validate every step file under `steps_dir`; the first error stops the start."""
    registry, errors = load(steps_dir, stop_at_first=True)
    if errors:
        raise errors[0]
    return registry


def load(steps_dir: Path | str, *, stop_at_first: bool = False) -> tuple[Registry, list[StepError]]:
    """Every step file under `steps_dir`, each loaded on its own: the registry of the valid ones and
    the errors of the others (`workbench check` reports them all)."""
    root = Path(steps_dir).resolve()
    if not root.is_dir():
        return Registry(root), [StepError(root, None, "steps folder does not exist")]
    # step files import helpers beside them (`from pets.store import ...`), or, as in Motia's
    # projects, from the project's folder (`from src.services.pet_store import create`)
    for folder in (root.parent, root):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    registry = Registry(root)
    errors: list[StepError] = []
    motia_project = root.name == "src"  # Motia's layout: its steps follow Motia's rules (workbench.motia)
    for path in step_files(root):
        try:
            module = _load_module(path, root)
            if not hasattr(module, "config"):
                raise StepError(path, "config", "missing: a step file needs a module-level `config` dict")
            step = build_step(
                path, module.config, getattr(module, "handler", None), motia_project=motia_project
            )
            registry.add(step)
        except StepError as exc:
            errors.append(exc)
            if stop_at_first:
                break
    return registry, errors
