from orders.models import Error, Order, PlaceOrder

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "PlaceOrder",
    "description": "Take an order; it is confirmed in the background.",
    "method": "POST",
    "path": "/orders",
    "body_schema": PlaceOrder,  # a bad body gets 400 naming the field
    "response_schema": {201: Order, 400: Error},
    "emits": ["order.placed"],
    "flows": ["orders"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    order_id = str(await ctx.state.increment("orders-meta", "lastId"))
    order = {
        "id": order_id,
        "item": request.body["item"],
        "quantity": request.body["quantity"],
        "status": "placed",
    }
    await ctx.state.set("orders", order_id, order)
    ctx.logger.info("Order placed", orderId=order_id, item=order["item"])
    await ctx.emit("order.placed", {"orderId": order_id})
    return ApiResponse(201, order)
