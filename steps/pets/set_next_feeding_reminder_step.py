from typing import Any

from pets.store import DAY_MS, PETS, now_ms

from workbench import Context, EventConfig, event_handler

config: EventConfig = {
    "type": "event",
    "name": "SetNextFeedingReminder",
    "description": "Schedules a new pet's next feeding and leaves a welcome note.",
    "subscribes": ["feeding.reminder.enqueued"],
    "emits": ["feeding.reminder.completed"],
    "flows": ["pets", "pet-lifecycle"],
    "retries": {"attempts": 3, "backoff": 1, "max_backoff": 10},
    "timeout": 10,
}


@event_handler
async def handler(data: Any, ctx: Context) -> None:
    pet_id = str(data["petId"])
    ctx.logger.info("Setting next feeding reminder", petId=pet_id, enqueuedAt=data.get("enqueuedAt"))

    def remind(pet: Any) -> Any:
        if pet is None or pet["status"] == "deleted":
            return None
        now = now_ms()
        return {
            **pet,
            "nextFeedingAt": now + DAY_MS,
            "notes": f"Welcome, {pet['name']}! First feeding check is scheduled for tomorrow.",
            "updatedAt": now,
        }

    pet = await ctx.state.update(PETS, pet_id, remind)
    if pet is None or pet.get("status") == "deleted":
        ctx.logger.warning("Pet not found or deleted; no reminder set", petId=pet_id)
        return
    ctx.logger.info("Next feeding reminder set", petId=pet_id, nextFeedingAt=pet["nextFeedingAt"])
    await ctx.emit("feeding.reminder.completed", {"petId": pet_id, "completedAt": now_ms()})
