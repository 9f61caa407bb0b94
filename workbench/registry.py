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

STEP_GLOB = "**/*_step.py"


@dataclass
class Registry:
    steps_dir: Path
    steps: dict[str, Step] = field(default_factory=dict)
    subscribers: dict[str, list[Step]] = field(default_factory=lambda: defaultdict(list))

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

    def subscribers_of(self, topic: str) -> list[Step]:
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
    return sorted(p for p in steps_dir.glob(STEP_GLOB) if p.is_file())


def _load_module(path: Path, steps_dir: Path) -> object:
    rel = path.relative_to(steps_dir).with_suffix("")
    module_name = "workbench_steps." + ".".join(rel.parts)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StepError(path, None, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
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
    # step files may import helpers that sit beside them (e.g. `from pets.store import ...`)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    registry = Registry(root)
    errors: list[StepError] = []
    for path in step_files(root):
        try:
            module = _load_module(path, root)
            if not hasattr(module, "config"):
                raise StepError(path, "config", "missing: a step file needs a module-level `config` dict")
            registry.add(build_step(path, module.config, getattr(module, "handler", None)))
        except StepError as exc:
            errors.append(exc)
            if stop_at_first:
                break
    return registry, errors
