from pets.models import Error, Pet
from pets.store import PETS

from workbench import ApiResponse

config = {
    "type": "api",
    "name": "GetPet",
    "description": "One pet by id.",
    "method": "GET",
    "path": "/pets/{id}",
    "response_schema": {200: Pet, 404: Error},
    "flows": ["pets"],
}


async def handler(request, ctx):
    pet = await ctx.state.get(PETS, request.path_params["id"])
    if pet is None:
        return ApiResponse(404, {"error": f"pet {request.path_params['id']} not found"})
    return ApiResponse(200, pet)
