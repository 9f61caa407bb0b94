"""`OPTIONS` for the steps' API: one answer per path, with every method served there.

Litestar makes an OPTIONS handler per route handler as it registers them, so a path served by
several steps (`GET /pets` and `POST /pets`) answered with the methods of the first one only. One
explicit handler per path, registered before the steps' own, answers for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar import Response, route
from litestar.handlers import HTTPRouteHandler

from ..step_config import ApiStep
from .api_steps import litestar_path


def _shape(path: str) -> str:
    """`/pets/{id}` and `/pets/{petId}` are one path."""
    return "/".join("{}" if part.startswith("{") else part for part in path.split("/"))


def options_routes(steps: Iterable[ApiStep]) -> list[HTTPRouteHandler]:
    paths: dict[str, tuple[str, set[str]]] = {}  # shape -> (the first step's path, methods)
    for step in steps:
        paths.setdefault(_shape(step.path), (step.path, set()))[1].add(step.method)
    return [_options(index, path, methods) for index, (path, methods) in enumerate(paths.values())]


def _options(index: int, path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(methods | {"OPTIONS"}))

    async def options() -> Response[None]:
        return Response(content=None, status_code=204, headers={"allow": allow})

    options.__name__ = f"options_{index}"
    handler: HTTPRouteHandler = route(
        litestar_path(path), http_method=["OPTIONS"], include_in_schema=False, name=f"options:{path}"
    )(options)
    return handler
