"""The official Python SDK (PyPI `elarian` 0.0.8) as an app against Hodi over TLS.

Run by tests/python_sdk.rs, which plays the customer with hodi-simulator: this script prints
`READY` once connected with its handlers set, answers the customer's SMS with a reply and an app
data update, runs reminders that carry app data, reads and changes the customer's state, and
prints `DONE`. The SDK keeps its handlers in class attributes, so an app and a simulator cannot
share one process: the customer is the Rust side.

Compatibility shim (the only one): elarian 0.0.8 passes `loop=` to asyncio.open_connection, which
Python 3.10 removed. Python 3.9 needs no shim.
"""

import asyncio
import json
import os
import sys
import time

if sys.version_info >= (3, 10):
    _open_connection = asyncio.open_connection

    async def _open_connection_without_loop(*args, loop=None, **kwargs):
        return await _open_connection(*args, **kwargs)

    asyncio.open_connection = _open_connection_without_loop

from elarian import Customer, Elarian  # noqa: E402  (after the shim)

WAIT = 20
NUMBER = os.environ["HODI_CUSTOMER"]


def say(line):
    print(line, flush=True)


async def until(what, check):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def main():
    seen = {"sms": [], "reminders": [], "statuses": []}
    app = Elarian(
        org_id=os.environ["HODI_ORG"],
        api_key=os.environ["HODI_KEY"],
        app_id=os.environ["HODI_APP"],
        options={"allow_notifications": True},
    )

    async def on_sms(notif, customer, app_data, callback):
        seen["sms"].append((notif.get("text"), customer.get_number()["number"], app_data))
        callback(response={"body": {"text": f"hi back, you said {notif.get('text')}"}}, data_update={"stage": "texted"})

    async def on_reminder(notif, customer, app_data, callback):
        seen["reminders"].append((notif["reminder"]["key"], notif["reminder"].get("payload"), app_data))
        callback(data_update={"stage": "reminded", "after": notif["reminder"]["key"]})

    async def on_status(notif, customer, app_data, callback):
        seen["statuses"].append(notif["status"])
        callback(data_update=app_data)

    app.set_on_received_sms(on_sms)
    app.set_on_message_status(on_status)
    app.set_on_reminder(on_reminder)
    await app.connect(host="localhost", port=int(os.environ["HODI_TLS_PORT"]))
    assert app.is_connected()

    customer = Customer(client=app, number=NUMBER, provider="cellular")
    state = await customer.get_state()
    assert state["customer_id"].startswith("cst_"), state
    say("READY")

    # The customer (the Rust side) texts; the reply goes out and the app data is kept.
    await until("the customer's SMS", lambda: seen["sms"])
    text, number, data = seen["sms"][0]
    assert (text, number) == ("hello from a phone", NUMBER), seen["sms"]
    assert data == {}, data
    await until("the reply's delivery report", lambda: "DELIVERED" in seen["statuses"])

    # Reminders carry the app data the last answer left; each answer changes it again.
    now = time.time()
    await customer.add_reminder({"key": "first", "remind_at": now + 1, "payload": "p1"})
    await until("the first reminder", lambda: seen["reminders"])
    assert seen["reminders"][0] == ("first", "p1", {"stage": "texted"}), seen["reminders"]
    await asyncio.sleep(0.5)  # the answer is applied before the next reminder fires
    await customer.add_reminder({"key": "second", "remind_at": time.time() + 1, "payload": "p2"})
    await until("the second reminder", lambda: len(seen["reminders"]) >= 2)
    assert seen["reminders"][1] == ("second", "p2", {"stage": "reminded", "after": "first"}), seen["reminders"]

    # App data set by command, then seen by the next notification.
    await customer.update_app_data({"stage": "set by command"})
    await customer.add_reminder({"key": "third", "remind_at": time.time() + 1, "payload": "p3"})
    await until("the third reminder", lambda: len(seen["reminders"]) >= 3)
    assert seen["reminders"][2][2] == {"stage": "set by command"}, seen["reminders"]

    # Identity state: tags and metadata through the SDK, read back in the state.
    await customer.update_tags([{"key": "plan", "value": "gold"}])
    await customer.update_metadata({"name": "Wanjiku"})
    state = await customer.get_state()
    tags = state["identity_state"]["tags"]
    assert any(t["mapping"]["key"] == "plan" and t["mapping"]["value"] == "gold" for t in tags), tags
    assert "name" in state["identity_state"]["metadata"], state["identity_state"]
    messages = state["messaging_state"]["messages"]
    assert any("received" in m for m in messages) and any("sent" in m for m in messages), json.dumps(messages)

    await app.disconnect()
    say("DONE")


asyncio.run(main())
