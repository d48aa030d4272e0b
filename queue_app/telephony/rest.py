"""The port to Twilio's REST API: the official `twilio` client, pointed where the settings say.

`TWILIO_API_BASE` moves every `client.api` call (Calls, Queues, Messages, Recordings, Conferences)
to the built-in emulator or a Twilio-compatible provider; twilio.md §5 "Pointing twilio-python
elsewhere". In virtual time the emulator installs an in-process `http_client` in
`app.extensions["twilio_http_client"]`, so the same code path is used with no sockets.

Only the worker calls these, after its transaction has committed: never a webhook.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from twilio.rest import Client

from ..config import TWILIO_API_BASE_DEFAULT


def twilio_client(config: Any = None, http_client: Any = None) -> Client:
    cfg = config if config is not None else current_app.config
    if http_client is None and config is None:
        http_client = current_app.extensions.get("twilio_http_client")
    client = Client(cfg["TWILIO_ACCOUNT_SID"], cfg["TWILIO_AUTH_TOKEN"], http_client=http_client)
    base = cfg["TWILIO_API_BASE"]
    if base and base != TWILIO_API_BASE_DEFAULT:
        client.api.base_url = base
    return client


QUEUE_PAGE_SIZE = 1000  # Twilio's largest page


@dataclass(frozen=True, slots=True)
class ListedQueue:
    sid: str
    friendly_name: str
    current_size: int
    date_created: datetime | None


@dataclass
class TwilioRest:
    """The few REST operations Kö uses, so services depend on this port and not on the SDK."""

    client: Client

    @classmethod
    def from_app(cls) -> TwilioRest:
        return cls(twilio_client())

    def redirect_call(self, call_sid: str, url: str) -> str:
        """Move a live call to new TwiML (e.g. from its <Enqueue> to a <Dial>); returns its status."""
        return str(self.client.calls(call_sid).update(url=url, method="POST").status)

    def hang_up(self, call_sid: str) -> None:
        self.client.calls(call_sid).update(status="completed")

    def delete_queue(self, queue_sid: str) -> None:
        self.client.queues(queue_sid).delete()

    def queues(self) -> Iterator[ListedQueue]:
        """Every queue of the account, page by page (Twilio pages by date created)."""
        for queue in self.client.queues.stream(page_size=QUEUE_PAGE_SIZE):
            yield ListedQueue(
                queue.sid, queue.friendly_name or "", int(queue.current_size or 0), queue.date_created
            )

    def create_call(
        self, to: str, from_: str, url: str, status_callback: str | None = None, timeout: int = 30
    ) -> str:
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "url": url, "method": "POST", "timeout": timeout}
        if status_callback:
            kwargs["status_callback"] = status_callback
            kwargs["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
        return str(self.client.calls.create(**kwargs).sid)

    def send_sms(self, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        kwargs: dict[str, Any] = {"to": to, "from_": from_, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        return str(self.client.messages.create(**kwargs).sid)

    # --- conferences (services/consult.py) ---------------------------------------------------------

    def child_in_progress(self, parent_sid: str) -> str | None:
        """The answered child leg of a call's `<Dial>` (the operator's browser or phone), if any."""
        legs = self.client.calls.list(parent_call_sid=parent_sid, status="in-progress", limit=10)
        return str(legs[0].sid) if legs else None

    def hold(self, conference_sid: str, label: str, hold: bool, hold_url: str | None = None) -> None:
        """Hold (with `hold_url` playing, fetched by GET) or resume a participant."""
        kwargs: dict[str, Any] = {"hold": hold}
        if hold and hold_url:
            kwargs.update(hold_url=hold_url, hold_method="GET")
        self.client.conferences(conference_sid).participants(label).update(**kwargs)

    def announce(self, conference_sid: str, label: str, url: str) -> None:
        """Play TwiML (`url`, fetched by POST) to one participant only."""
        participant = self.client.conferences(conference_sid).participants(label)
        participant.update(announce_url=url, announce_method="POST")

    def end_conference_on_exit(self, conference_sid: str, label: str, value: bool) -> None:
        self.client.conferences(conference_sid).participants(label).update(end_conference_on_exit=value)

    def add_participant(
        self, conference_sid: str, to: str, from_: str, label: str, status_callback: str, timeout: int
    ) -> str:
        """Dial `to` into the conference; its leg's status callbacks go to `status_callback`."""
        participant = self.client.conferences(conference_sid).participants.create(
            from_=from_,
            to=to,
            label=label,
            timeout=timeout,
            beep="false",
            early_media=True,
            start_conference_on_enter=True,
            end_conference_on_exit=False,
            status_callback=status_callback,
            status_callback_method="POST",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        )
        return str(participant.call_sid)

    def remove_participant(self, conference_sid: str, label: str) -> None:
        self.client.conferences(conference_sid).participants(label).delete()

    def conference_participants(self, friendly_name: str) -> dict[str, str] | None:
        """Label -> status of each participant of the live conference `friendly_name`, or None."""
        live = self.client.conferences.list(friendly_name=friendly_name, status="in-progress", limit=1)
        if not live:
            return None
        participants = self.client.conferences(live[0].sid).participants.list(limit=50)
        return {str(p.label or p.call_sid): str(p.status or "connected") for p in participants}
