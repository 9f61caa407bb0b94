from orders.models import Error, Order

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, api_handler

config: ApiConfig = {
    "type": "api",
    "name": "GetOrder",
    "description": "One order by id.",
    "method": "GET",
    "path": "/orders/{id}",
    "response_schema": {200: Order, 404: Error},
    "flows": ["orders"],
}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    order = await ctx.state.get("orders", request.path_params["id"])
    if order is None:
        return ApiResponse(404, {"error": f"order {request.path_params['id']} not found"})
    return ApiResponse(200, order)
