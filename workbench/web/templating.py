"""The Jinja environment of the workbench pages.

Filters: `ms`, `clock`, `ago`, `datetime`, `pretty`, `row_id` (views.py). Globals every template may
use: `url(name, **params)` (a workbench URL from its route's name, see urls.py), `static(path)`
(a file of `static/`) and `js_urls` (the URL templates workbench.js fills in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from . import views
from .pages import URLS
from .urls import Urls

JS_ROUTES = ("trace",)  # the routes workbench.js links to


def environment(directory: Path, urls: Urls) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters.update(
        ms=views.fmt_ms, clock=views.fmt_clock, ago=views.fmt_ago, datetime=views.fmt_datetime,
        pretty=views.pretty_json, row_id=views.row_id,
    )  # fmt: skip
    env.globals.update(
        url=urls,
        static=lambda path: urls("static", file=path),
        js_urls=urls.templates(*JS_ROUTES),
    )
    return env


def template_config(directory: Path, urls: Urls = URLS) -> TemplateConfig[Any]:
    """The app's template config, with the URLs of the workbench's own routes (pages.py)."""
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment(directory, urls)))
