"""Where the workbench lives, and its URLs built from the routes that serve them.

Each page route is written once, in its decorator; `Urls.of(...)` reads the paths back from the
route handlers, so a template asks for `url("trace", trace_id=t.id)` and workbench.js for
`wbUrl("trace", {trace_id: id})` instead of spelling `/_workbench/traces/...` out. A route's name
is its handler's name (the method name in a Controller).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Controller
from litestar.handlers import BaseRouteHandler

BASE = "/_workbench"  # every workbench route is under it (steps may not use it: step_config.py)
API = f"{BASE}/api"
STATIC = f"{BASE}/static"
OPENAPI = "/schema/openapi.json"  # the steps' API schema (app.py's OpenAPIConfig)

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")  # `{trace_id:str}`, `{file:path}`, `{id}`
_PATH_SAFE = ":@"  # left as they are in a path segment (span ids have a colon)
_QUERY_SAFE = ":/"


class Urls:
    """URLs by route name: `urls("logs", step="CreatePet")` → `/_workbench/logs?step=CreatePet`.

    Path parameters are filled in (quoted; `path`-typed ones keep their slashes); any other
    keyword becomes the query string; keywords that are None or "" are left out, as a form would.
    """

    def __init__(self, routes: Mapping[str, str]) -> None:
        self.routes = dict(routes)  # name -> path, in Litestar's syntax
        # name -> (format string, {param: characters kept unquoted})
        self._compiled: dict[str, tuple[str, dict[str, str]]] = {}
        for name, path in self.routes.items():
            params = {m[1]: _PATH_SAFE + ("/" if m[2] == "path" else "") for m in _PARAM.finditer(path)}
            template = _PARAM.sub(lambda m: "{" + m[1] + "}", path)
            self._compiled[name] = (template, params)

    @classmethod
    def of(cls, *owners: Any, extra: Mapping[str, str] | None = None) -> Urls:
        """The routes of Controllers and route handlers, plus `extra` (name -> path) served elsewhere."""
        routes: dict[str, str] = {}
        for owner in owners:
            if inspect.isclass(owner) and issubclass(owner, Controller):
                prefix = owner.path.rstrip("/")  # type: ignore[misc]  # a class attribute of the subclass
                handlers = [h for h in vars(owner).values() if isinstance(h, BaseRouteHandler)]
            else:
                prefix, handlers = "", [owner]
            for handler in handlers:
                name = handler.name or handler.handler_name
                if name in routes:
                    raise ValueError(f"two routes named {name!r}")
                routes[name] = prefix + min(handler.paths, key=lambda p: (len(p), p))
        return cls({**routes, **(extra or {})})

    def __call__(self, name: str, /, **params: Any) -> str:
        try:
            template, path_params = self._compiled[name]
        except KeyError:
            raise KeyError(f"no workbench route named {name!r}; known: {sorted(self._compiled)}") from None
        filled = {}
        for param, safe in path_params.items():
            if param not in params:
                raise TypeError(f"url({name!r}): missing path parameter {param!r}")
            filled[param] = quote(str(params.pop(param)), safe=safe)
        url = template.format(**filled)
        query = {k: v for k, v in params.items() if v is not None and v != ""}
        return f"{url}?{urlencode(query, safe=_QUERY_SAFE)}" if query else url

    def templates(self, *names: str) -> dict[str, str]:
        """`{name: "/_workbench/traces/{trace_id}"}`: URL templates for workbench.js to fill in."""
        return {name: self._compiled[name][0] for name in names}
