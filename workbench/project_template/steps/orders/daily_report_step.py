from collections import Counter

from workbench import Context, CronConfig, cron_handler

config: CronConfig = {
    "type": "cron",
    "name": "DailyReport",
    "description": "Counts the orders by status every morning.",
    "cron": "0 9 * * *",  # 09:00 every day, in the server's time zone (or set "timezone")
    "flows": ["orders"],
}


@cron_handler
async def handler(ctx: Context) -> None:
    orders = await ctx.state.get_group("orders")
    counts = Counter(order["status"] for order in orders.values())
    await ctx.state.set("reports", "latest", {"orders": len(orders), **counts})
    ctx.logger.info("Daily report", orders=len(orders), **counts)
