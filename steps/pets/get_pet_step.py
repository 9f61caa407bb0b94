from pets.models import Error, Pet
from pets.store import PETS

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "GetPet",
    "description": "One pet by id.",
    "method": "GET",
    "path": "/pets/{id}",
    "response_schema": {200: Pet, 404: Error},
    "flows": ["pets"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    pet = await ctx.state.get(PETS, request.path_params["id"])
    if pet is None:
        return ApiResponse(404, {"error": f"pet {request.path_params['id']} not found"})
    return ApiResponse(200, pet)
