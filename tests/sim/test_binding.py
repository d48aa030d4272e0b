"""The e2e binding against the real product app: its REST port lands in the emulator, in-process."""

from __future__ import annotations

from queue_app.telephony.rest import TwilioRest
from tests.e2e.conftest import bind_emulator


def test_it_serves_the_products_rest_port_in_process(app, clock):
    emulator = bind_emulator(app, clock)
    with app.app_context():
        sid = TwilioRest.from_app().send_sms("+46701234567", "+46812345678", "Hej", None)
    emulator.advance(5)

    [message] = emulator.outbox
    assert (message.sid, message.body, message.status) == (sid, "Hej", "delivered")
    assert emulator.now() == clock.now()
