"""The request inputs the workbench's routes share: query-parameter types (a bad value gets 400
naming the parameter) and the JSON body of a request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.params import FromQuery, QueryParameter

from ..json_values import UnfitJson, parse_json

Text = Annotated[str | None, QueryParameter(max_length=200)]
# the cursors the lists hand out: a trace list's is `start-ms:trace-id`; a log list's is a position
# in the log stream (`ms-seq`), or an offset within one trace's lines; anything else is a 400
TraceCursor = Annotated[
    str | None, QueryParameter(max_length=100, pattern=r"^[0-9]{1,16}:[0-9A-Za-z]{1,64}$")
]
LogCursor = Annotated[
    str | None, QueryParameter(max_length=100, pattern=r"^([0-9]{1,20}-[0-9]{1,20}|[0-9]{1,9})$")
]
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Millis = Annotated[int | None, QueryParameter(ge=0)]
Status = FromQuery[Literal["running", "completed", "failed", "cancelled"] | None]
Level = FromQuery[Literal["debug", "info", "warning", "error", "critical"] | None]


async def json_body(request: Request[Any, Any, Any], *, empty: Any = None) -> Any:
    """The request's body parsed as JSON (`empty` when there is none); 400 when it is not JSON, or is
    JSON that could not be stored and shown again (see `workbench.json_values`)."""
    raw = await request.body()
    if not raw.strip():
        return empty
    try:
        return parse_json(raw)
    except UnfitJson as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
