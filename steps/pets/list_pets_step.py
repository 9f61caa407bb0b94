from pets.models import PetList
from pets.store import PETS

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "ListPets",
    "description": "All pets, newest first (deleted ones only with ?includeDeleted=true).",
    "method": "GET",
    "path": "/pets",
    "query_params": ["includeDeleted"],
    "response_schema": {200: PetList},
    "flows": ["pets"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    include_deleted = request.query_params.get("includeDeleted", "").lower() in ("1", "true", "yes")
    pets = list((await ctx.state.get_group(PETS)).values())
    if not include_deleted:
        pets = [p for p in pets if p.get("status") != "deleted"]
    pets.sort(key=lambda p: (p["createdAt"], int(p["id"])), reverse=True)
    return ApiResponse(200, {"pets": pets})
