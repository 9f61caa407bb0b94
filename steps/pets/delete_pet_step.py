from typing import Any

from pets.models import Deleted, Error
from pets.store import DAY_MS, PETS, now_ms

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "DeletePet",
    "description": "Soft delete: the pet is marked deleted and purged by the reaper after 30 days.",
    "method": "DELETE",
    "path": "/pets/{id}",
    "response_schema": {202: Deleted, 404: Error},
    "flows": ["pets"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    pet_id = request.path_params["id"]
    already = False

    def mark(pet: Any) -> Any:
        nonlocal already
        if pet is None or pet["status"] == "deleted":
            already = pet is not None
            return None  # missing, or already deleted: keep the first purge date
        now = now_ms()
        return {**pet, "status": "deleted", "deletedAt": now, "purgeAt": now + 30 * DAY_MS, "updatedAt": now}

    pet = await ctx.state.update(PETS, pet_id, mark)
    if pet is None:
        return ApiResponse(404, {"error": f"pet {pet_id} not found"})
    if already:
        return ApiResponse(
            202, {"message": "Pet was already deleted", "petId": pet_id, "purgeAt": pet["purgeAt"]}
        )
    ctx.logger.info("Pet deleted", petId=pet_id, purgeAt=pet["purgeAt"])
    return ApiResponse(
        202,
        {
            "message": "Pet deleted; it will be purged after 30 days",
            "petId": pet_id,
            "purgeAt": pet["purgeAt"],
        },
    )
