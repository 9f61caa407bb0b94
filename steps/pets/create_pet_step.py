from pets.models import CreatePetBody, Error, Pet
from pets.store import PETS, next_id, now_ms

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "CreatePet",
    "description": "Register a new pet; a feeding reminder is set in the background.",
    "method": "POST",
    "path": "/pets",
    "body_schema": CreatePetBody,
    "response_schema": {201: Pet, 400: Error},
    "emits": ["pet.created", "feeding.reminder.enqueued"],
    "flows": ["pets", "pet-lifecycle"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    body = request.body
    now = now_ms()
    pet = {
        "id": await next_id(ctx.state),
        "name": body["name"].strip(),
        "species": body["species"],
        "ageMonths": body["ageMonths"],
        "status": "new",
        "createdAt": now,
        "updatedAt": now,
    }
    await ctx.state.set(PETS, pet["id"], pet)
    ctx.logger.info("Pet created", petId=pet["id"], name=pet["name"], species=pet["species"])
    await ctx.emit("pet.created", {"petId": pet["id"], "event": "pet.created"})
    await ctx.emit("feeding.reminder.enqueued", {"petId": pet["id"], "enqueuedAt": now})
    return ApiResponse(201, pet)
