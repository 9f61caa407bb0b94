"""Workbench pages (HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from ..registry import Registry


def template_config(directory: Path) -> TemplateConfig[Any]:
    return TemplateConfig(directory=directory, engine=JinjaTemplateEngine)


def page_handlers(registry: Registry) -> list[Any]:
    return []
