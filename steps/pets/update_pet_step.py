from typing import Any

from pets.models import Error, Pet, StatusRequested, UpdatePetBody
from pets.store import PETS, now_ms

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "UpdatePet",
    "description": "Change a pet's details; a status change is requested from the lifecycle orchestrator.",
    "method": "PUT",
    "path": "/pets/{id}",
    "body_schema": UpdatePetBody,
    "response_schema": {200: Pet, 202: StatusRequested, 400: Error, 404: Error, 409: Error},
    "emits": ["pet.status.update.requested"],
    "flows": ["pets", "pet-lifecycle"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    pet_id = request.path_params["id"]
    changes = {k: v for k, v in request.body.items() if v is not None}
    if not changes:
        return ApiResponse(400, {"error": "body: nothing to update (name, species, ageMonths or status)"})
    requested = changes.pop("status", None)
    rejected = None

    def apply(pet: Any) -> Any:
        nonlocal rejected
        if pet is None:
            return None
        if pet["status"] == "deleted":
            rejected = "deleted"
            return None
        if not changes:
            return None
        return {**pet, **changes, "updatedAt": now_ms()}

    pet = await ctx.state.update(PETS, pet_id, apply)
    if pet is None:
        return ApiResponse(404, {"error": f"pet {pet_id} not found"})
    if rejected:
        return ApiResponse(409, {"error": f"pet {pet_id} is deleted"})
    if changes:
        ctx.logger.info("Pet updated", petId=pet_id, fields=sorted(changes))
    if requested is not None and requested != pet["status"]:
        await ctx.emit(
            "pet.status.update.requested",
            {"petId": pet_id, "requestedStatus": requested, "currentStatus": pet["status"]},
        )
        ctx.logger.info("Status change requested", petId=pet_id, fromStatus=pet["status"], toStatus=requested)
        return ApiResponse(
            202,
            {
                "message": "Status change requested; the lifecycle orchestrator will apply it if allowed",
                "petId": pet_id,
                "currentStatus": pet["status"],
                "requestedStatus": requested,
            },
        )
    return ApiResponse(200, pet)
