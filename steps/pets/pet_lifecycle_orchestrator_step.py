from typing import Any

from pets.lifecycle import ON_FEEDING_DONE, can_request, follow_ups, rejection
from pets.store import PETS, now_ms

from workbench import Context, EventConfig, event_handler

config: EventConfig = {
    "type": "event",
    "name": "PetLifecycleOrchestrator",
    "description": "The only writer of a pet's status: applies the lifecycle rules and their follow-ups.",
    "subscribes": ["pet.created", "feeding.reminder.completed", "pet.status.update.requested"],
    "emits": ["pet.status.changed"],
    "flows": ["pet-lifecycle"],
}


@event_handler
async def handler(data: Any, ctx: Context) -> None:
    pet_id = str(data["petId"])
    if ctx.topic == "pet.created":
        ctx.logger.info("Pet registered in the lifecycle", petId=pet_id, status="new")
        return
    transitions: list[tuple[str, str, str]] = []
    outcome: dict[str, Any] = {}

    def decide(pet: Any) -> Any:
        transitions.clear()
        outcome.clear()
        if pet is None:
            outcome["missing"] = True
            return None
        current = pet["status"]
        if ctx.topic == "feeding.reminder.completed":
            source, target = ON_FEEDING_DONE
            if current != source:
                outcome["skipped"] = current
                return None
            path = [target]
            kind = "automatic"
        else:
            requested = data["requestedStatus"]
            if not can_request(current, requested):
                outcome["rejected"] = (current, requested)
                return None
            path = [requested, *follow_ups(requested)]
            kind = "requested"
        status = current
        for nxt in path:
            transitions.append((status, nxt, kind if nxt == path[0] else "automatic"))
            status = nxt
        return {**pet, "status": status, "updatedAt": now_ms()}

    # the state update re-runs `decide` if another writer changed the pet meanwhile (no lost update)
    await ctx.state.update(PETS, pet_id, decide)
    if outcome.get("missing"):
        ctx.logger.warning("Pet not found; nothing to do", petId=pet_id)
        return
    if "skipped" in outcome:
        ctx.logger.info(
            "No automatic transition", petId=pet_id, status=outcome["skipped"], reason="pet is no longer new"
        )
        return
    if "rejected" in outcome:
        current, requested = outcome["rejected"]
        ctx.logger.warning(
            "Transition rejected", petId=pet_id, fromStatus=current, toStatus=requested,
            reason=rejection(current, requested),
        )  # fmt: skip
        return
    for old, new, kind in transitions:
        ctx.logger.info("Transition applied", petId=pet_id, fromStatus=old, toStatus=new, kind=kind)
        await ctx.emit("pet.status.changed", {"petId": pet_id, "from": old, "to": new, "kind": kind})
