from typing import Any

from workbench import Context, EventConfig, event_handler

config: EventConfig = {
    "type": "event",
    "name": "ConfirmOrder",
    "description": "Confirms a placed order (a real app would check stock or take a payment here).",
    "subscribes": ["order.placed"],
    "emits": ["order.confirmed"],
    "flows": ["orders"],
    "retries": {"attempts": 3, "backoff": 1, "max_backoff": 10},
    "timeout": 10,
}


@event_handler
async def handler(data: Any, ctx: Context) -> None:
    order_id = str(data["orderId"])

    def confirm(order: Any) -> Any:
        if order is None or order["status"] != "placed":
            return None  # gone, or confirmed already: nothing to change
        return {**order, "status": "confirmed"}

    order = await ctx.state.update("orders", order_id, confirm)
    if order is None:
        ctx.logger.warning("Order not found", orderId=order_id)
        return
    ctx.logger.info("Order confirmed", orderId=order_id)
    await ctx.emit("order.confirmed", {"orderId": order_id})
