"""The orders flow, end to end: the `workbench` fixture (from the workbench-steps package) runs the
steps in-process against a private Redis, with a real worker behind `drain()`."""

from datetime import datetime

from workbench.testing import Harness


def test_an_order_is_placed_and_confirmed_in_the_background(workbench: Harness) -> None:
    response = workbench.client.post("/orders", json={"item": "coffee", "quantity": 2})
    assert response.status_code == 201
    order = response.json()
    assert order["status"] == "placed"

    workbench.drain()  # runs ConfirmOrder, and anything it emits in turn

    assert [e.topic for e in workbench.emitted()] == ["order.placed", "order.confirmed"]
    assert workbench.emitted("order.confirmed")[0].data == {"orderId": order["id"]}
    assert workbench.state.get("orders", order["id"])["status"] == "confirmed"
    trace = workbench.trace(response)
    assert trace.status == "completed"
    assert trace.span("ConfirmOrder").attempt == 1
    assert workbench.client.get(f"/orders/{order['id']}").json()["status"] == "confirmed"


def test_a_bad_order_is_refused_naming_the_field(workbench: Harness) -> None:
    response = workbench.client.post("/orders", json={"item": "coffee", "quantity": 0})
    assert response.status_code == 400
    assert "quantity" in response.json()["error"]
    assert workbench.emitted() == []


def test_an_unknown_order_is_404(workbench: Harness) -> None:
    assert workbench.client.get("/orders/41").status_code == 404


def test_the_daily_report_counts_orders_by_status(workbench: Harness) -> None:
    workbench.state.set("orders", "1", {"id": "1", "item": "tea", "quantity": 1, "status": "confirmed"})
    workbench.state.set("orders", "2", {"id": "2", "item": "cake", "quantity": 3, "status": "placed"})

    trace = workbench.run_cron("DailyReport")

    assert trace.status == "completed"
    assert workbench.state.get("reports", "latest") == {"orders": 2, "confirmed": 1, "placed": 1}
    assert [log.message for log in workbench.logs("DailyReport")] == ["Daily report"]


def test_the_daily_report_runs_every_morning_at_nine(workbench: Harness) -> None:
    after = datetime(2030, 1, 1, 12, 0).astimezone()
    runs = workbench.next_runs("DailyReport", after=after, count=2)
    assert [(r.day, r.hour, r.minute) for r in runs] == [(2, 9, 0), (3, 9, 0)]
