from pets.store import PETS, now_ms

from workbench import Context, CronConfig, cron_handler

config: CronConfig = {
    "type": "cron",
    "name": "DeletionReaper",
    "description": "Purges pets whose 30-day grace period after deletion has passed.",
    "cron": "0 2 * * *",
    "flows": ["pets"],
}


@cron_handler
async def handler(ctx: Context) -> None:
    ctx.logger.info("Deletion reaper started")
    now = now_ms()
    pets = await ctx.state.get_group(PETS)
    purged = 0
    for pet_id, pet in pets.items():
        if pet.get("status") == "deleted" and pet.get("purgeAt") is not None and pet["purgeAt"] <= now:
            await ctx.state.delete(PETS, pet_id)
            purged += 1
            ctx.logger.info("Pet purged", petId=pet_id, name=pet.get("name"), deletedAt=pet.get("deletedAt"))
    ctx.logger.info("Deletion reaper finished", scanned=len(pets), purged=purged)
