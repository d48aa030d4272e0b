"""Twilio's REST API (2010-04-01) over the emulator's state, independent of any web framework.

`RestApi.handle(method, path, form, authorization)` takes the path from `/2010-04-01/…` on, the
form-encoded body as (name, value) pairs and the Authorization header, and returns a `RestResponse`.
The Flask blueprint (`web.py`) and the in-process `EmulatorHttpClient` (`http_client.py`) both call it.
Shapes and codes follow twilio.md §5: JSON when the path ends in `.json`, else (minimal) XML; 201
create, 200 fetch/update, 204 delete; errors as {"code", "message", "more_info", "status"}.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from .emulator import API_VERSION, rfc2822
from .model import MAX_QUEUE_SIZE_LIMIT, Call, Conference, Message, Participant, Queue, Recording

if TYPE_CHECKING:
    from .emulator import Emulator

Form = list[tuple[str, str]]
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CLIENT = re.compile(r"^client:[^\s/?#:@]{1,256}$")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class RestResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Request:
    def __init__(
        self, method: str, parts: list[str], form: Form, query: Form, as_json: bool, ext: str
    ) -> None:
        self.method = method
        self.parts = parts
        self.form = form
        self.query = query
        self.as_json = as_json
        self.ext = ext

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.form:
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]

    def arg(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return default


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() == "true"


class RestApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.requests = 0

    # ---- entry point ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, form: Form, authorization: str | None, query: Form | None = None
    ) -> RestResponse:
        method = method.upper()
        as_json = path.endswith(".json")
        ext = ""
        match = re.search(r"\.(json|xml|wav|mp3)$", path)
        if match:
            ext = match.group(1)
            path = path[: match.start()]
        parts = [p for p in path.split("/") if p]
        try:
            if len(parts) < 3 or parts[0] != API_VERSION or parts[1] != "Accounts":
                raise ApiError(404, 20404, "The requested resource was not found")
            with self.emu.scheduler.lock:
                self.requests += 1
                self.emu.note_activity()
                media = len(parts) == 5 and parts[3] == "Recordings" and ext in ("", "wav", "mp3")
                if not (media and not self.emu.options.recordings_require_auth):
                    self.authenticate(authorization)
                if parts[2] != self.emu.account_sid:
                    raise ApiError(404, 20404, f"The requested resource {path} was not found")
                request = Request(method, parts[3:], form, query or [], as_json, ext)
                if media and method == "GET":
                    return self.recording_media(request)
                status, payload = self.route(request)
        except ApiError as exc:
            return self.error(exc, as_json)
        if status == 204:
            return RestResponse(204, b"", "text/plain")
        return self.render(status, payload, as_json)

    def authenticate(self, authorization: str | None) -> None:
        user, password = "", ""
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, _, password = decoded.partition(":")
        if user == self.emu.account_sid and password == self.emu.auth_token:
            return
        key = self.emu.api_keys.get(user)
        if key is not None and key.secret == password:
            return
        raise ApiError(401, 20003, "Authentication Error - invalid username")

    def error(self, exc: ApiError, as_json: bool) -> RestResponse:
        payload = {
            "code": exc.code,
            "message": exc.message,
            "more_info": f"https://www.twilio.com/docs/errors/{exc.code}",
            "status": exc.status,
        }
        response = self.render(exc.status, {"RestException": payload} if not as_json else payload, as_json)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response

    def render(self, status: int, payload: dict[str, Any], as_json: bool) -> RestResponse:
        if as_json:
            return RestResponse(status, json.dumps(payload).encode(), "application/json")
        return RestResponse(status, _xml(payload).encode(), "application/xml")

    # ---- routing -------------------------------------------------------------------------------

    def route(self, r: Request) -> tuple[int, dict[str, Any]]:
        p, m = r.parts, r.method
        routes: list[tuple[str, str, Callable[..., tuple[int, dict[str, Any]]]]] = [
            ("GET", "Calls", self.list_calls),
            ("POST", "Calls", self.create_call),
            ("GET", "Calls/*", self.fetch_call),
            ("POST", "Calls/*", self.update_call),
            ("DELETE", "Calls/*", self.delete_call),
            ("GET", "Queues", self.list_queues),
            ("POST", "Queues", self.create_queue),
            ("GET", "Queues/*", self.fetch_queue),
            ("POST", "Queues/*", self.update_queue),
            ("DELETE", "Queues/*", self.delete_queue),
            ("GET", "Queues/*/Members", self.list_members),
            ("GET", "Queues/*/Members/*", self.fetch_member),
            ("POST", "Queues/*/Members/*", self.dequeue_member),
            ("GET", "Messages", self.list_messages),
            ("POST", "Messages", self.create_message),
            ("GET", "Messages/*", self.fetch_message),
            ("GET", "Recordings", self.list_recordings),
            ("GET", "Recordings/*", self.fetch_recording),
            ("DELETE", "Recordings/*", self.delete_recording),
            ("GET", "Conferences", self.list_conferences),
            ("GET", "Conferences/*", self.fetch_conference),
            ("POST", "Conferences/*", self.update_conference),
            ("GET", "Conferences/*/Participants", self.list_participants),
            ("POST", "Conferences/*/Participants", self.create_participant),
            ("GET", "Conferences/*/Participants/*", self.fetch_participant),
            ("POST", "Conferences/*/Participants/*", self.update_participant),
            ("DELETE", "Conferences/*/Participants/*", self.remove_participant),
        ]
        shape_matched = False
        for route_method, pattern, handler in routes:
            shape = pattern.split("/")
            if len(shape) != len(p) or any(s != "*" and s != q for s, q in zip(shape, p, strict=True)):
                continue
            shape_matched = True
            if route_method == m:
                ids = [q for s, q in zip(shape, p, strict=True) if s == "*"]
                return handler(r, *ids)
        if shape_matched:
            raise ApiError(405, 20004, f"Method {m} not allowed")
        raise ApiError(404, 20404, f"The requested resource /{'/'.join(p)} was not found")

    # ---- helpers -------------------------------------------------------------------------------

    def base_uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.emu.account_sid}"

    def page(
        self, r: Request, key: str, items: list[dict[str, Any]], path: str
    ) -> tuple[int, dict[str, Any]]:
        size = max(1, min(1000, int(r.arg("PageSize") or 50)))
        number = max(0, int(r.arg("Page") or 0))
        start = number * size
        chunk = items[start : start + size]
        uri = f"{self.base_uri()}/{path}.json"

        def page_uri(n: int) -> str:
            return f"{uri}?{urlencode({'PageSize': size, 'Page': n})}"

        return 200, {
            key: chunk,
            "page": number,
            "page_size": size,
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "uri": page_uri(number),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(number + 1) if start + size < len(items) else None,
            "previous_page_uri": page_uri(number - 1) if number > 0 else None,
        }

    def require(self, r: Request, name: str, code: int, message: str) -> str:
        value = r.get(name)
        if not value:
            raise ApiError(400, code, message)
        return value

    def the_call(self, sid: str) -> Call:
        call = self.emu.state.calls.get(sid)
        if call is None:
            raise ApiError(
                404, 20404, f"The requested resource {self.base_uri()}/Calls/{sid}.json was not found"
            )
        return call

    def the_queue(self, sid: str) -> Queue:
        queue = self.emu.state.queues.get(sid)
        if queue is None:
            raise ApiError(
                404, 20404, f"The requested resource {self.base_uri()}/Queues/{sid}.json was not found"
            )
        return queue

    def the_conference(self, sid: str) -> Conference:
        conference = self.emu.state.conferences.get(sid)
        if conference is None:
            raise ApiError(
                404, 20404, f"The requested resource {self.base_uri()}/Conferences/{sid}.json was not found"
            )
        return conference

    # ---- calls ---------------------------------------------------------------------------------

    def call_json(self, call: Call) -> dict[str, Any]:
        uri = f"{self.base_uri()}/Calls/{call.sid}.json"
        return {
            "sid": call.sid,
            "account_sid": call.account_sid,
            "parent_call_sid": call.parent_sid,
            "date_created": rfc2822(call.created_at),
            "date_updated": rfc2822(call.end_time or call.start_time or call.created_at),
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.status,
            "start_time": rfc2822(call.start_time) if call.start_time else None,
            "end_time": rfc2822(call.end_time) if call.end_time else None,
            "duration": str(call.duration_s()) if call.end_time else None,
            "price": None,
            "price_unit": "USD",
            "direction": call.direction,
            "answered_by": call.answered_by,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {
                "recordings": uri.replace(".json", "/Recordings.json"),
                "notifications": uri.replace(".json", "/Notifications.json"),
            },
        }

    def list_calls(self, r: Request) -> tuple[int, dict[str, Any]]:
        calls = list(self.emu.state.calls.values())
        for name, attr in (
            ("To", "to"),
            ("From", "from_"),
            ("Status", "status"),
            ("ParentCallSid", "parent_sid"),
        ):
            wanted = r.arg(name)
            if wanted:
                calls = [c for c in calls if getattr(c, attr) == wanted]
        calls.sort(key=lambda c: c.created_at, reverse=True)
        return self.page(r, "calls", [self.call_json(c) for c in calls], "Calls")

    def create_call(self, r: Request) -> tuple[int, dict[str, Any]]:
        from .executor import start_outbound

        to = self.require(r, "To", 21201, "No 'To' number is specified")
        from_ = self.require(r, "From", 21213, "No 'From' number is specified")
        if not (E164.match(to) or CLIENT.match(to) or to.startswith("sip:")):
            raise ApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        url, twiml, app_sid = r.get("Url"), r.get("Twiml"), r.get("ApplicationSid")
        if not (url or twiml or app_sid):
            raise ApiError(
                400, 21205, "Url parameter is required"
            )  # https://www.twilio.com/docs/errors/21205
        if url and not re.match(r"^https?://", url):
            raise ApiError(400, 21205, f"Url is not a valid URL: {url}")
        if twiml and len(twiml) > 4000:
            raise ApiError(400, 21232, "Twiml is longer than 4000 characters")
        timeout = float(r.get("Timeout") or 60)
        call = self.emu.new_call(from_, to, "outbound-api", "queued", script=self.emu.party_script(to))
        call.url = url
        call.method = (r.get("Method") or "POST").upper()
        call.twiml = twiml if not url else None
        call.fallback_url = r.get("FallbackUrl")
        call.fallback_method = (r.get("FallbackMethod") or "POST").upper()
        call.status_callback = r.get("StatusCallback")
        call.status_callback_method = (r.get("StatusCallbackMethod") or "POST").upper()
        events = [e for value in r.getlist("StatusCallbackEvent") for e in value.replace(",", " ").split()]
        call.status_callback_events = frozenset(events or ["completed"])
        start_outbound(self.emu, call, min(600.0, max(1.0, timeout)))
        return 201, self.call_json(call)

    def fetch_call(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        return 200, self.call_json(self.the_call(sid))

    def update_call(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        call = self.the_call(sid)
        url, twiml, status = r.get("Url"), r.get("Twiml"), r.get("Status")
        if r.get("StatusCallback"):
            call.status_callback = r.get("StatusCallback")
        if r.get("FallbackUrl"):
            call.fallback_url = r.get("FallbackUrl")
        if url or twiml:
            if call.ended:
                # https://www.twilio.com/docs/errors/21220
                raise ApiError(400, 21220, "Call is not in-progress. Cannot redirect.")
            method = (r.get("Method") or "POST").upper()
            if call.direction == "outbound-api" and not call.answered:
                call.url, call.method, call.twiml = url, method, None if url else twiml
            else:
                self.emu.redirect(call, url, method, None if url else twiml)
        if status == "canceled":
            if call.status in ("queued", "initiated", "ringing"):
                self.emu.end_call(call, "canceled")
        elif status == "completed":
            if call.status in ("queued", "initiated", "ringing") and not call.answered:
                self.emu.end_call(call, "canceled")
            else:
                self.emu.hang_up(call)
        elif status:
            raise ApiError(400, 21218, f"Invalid Status: {status}")
        return 200, self.call_json(call)

    def delete_call(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        call = self.the_call(sid)
        if not call.ended:
            raise ApiError(400, 21220, "Call is in-progress. Cannot delete.")
        del self.emu.state.calls[sid]
        return 204, {}

    # ---- queues --------------------------------------------------------------------------------

    def queue_json(self, queue: Queue) -> dict[str, Any]:
        uri = f"{self.base_uri()}/Queues/{queue.sid}.json"
        return {
            "sid": queue.sid,
            "account_sid": queue.account_sid,
            "friendly_name": queue.friendly_name,
            "current_size": len(queue.members),
            "max_size": queue.max_size,
            "average_wait_time": self.emu.average_wait_s(queue),
            "date_created": rfc2822(queue.created_at),
            "date_updated": rfc2822(queue.updated_at),
            "uri": uri,
            "subresource_uris": {"members": uri.replace(".json", "/Members.json")},
        }

    def list_queues(self, r: Request) -> tuple[int, dict[str, Any]]:
        queues = sorted(self.emu.state.queues.values(), key=lambda q: q.created_at)
        return self.page(r, "queues", [self.queue_json(q) for q in queues], "Queues")

    def create_queue(self, r: Request) -> tuple[int, dict[str, Any]]:
        name = self.require(
            r, "FriendlyName", 20001, "Missing required parameter FriendlyName in the post body"
        )
        if len(name) > 64:
            raise ApiError(400, 20001, "FriendlyName is longer than 64 characters")
        if self.emu.queue_by_name(name) is not None:
            raise ApiError(400, 22003, f"A queue named {name} already exists")
        queue = self.emu.create_queue(name, self._max_size(r))
        return 201, self.queue_json(queue)

    def _max_size(self, r: Request, default: int = 1000) -> int:
        value = int(r.get("MaxSize") or default)
        if not 1 <= value <= MAX_QUEUE_SIZE_LIMIT:
            raise ApiError(400, 20001, f"MaxSize must be between 1 and {MAX_QUEUE_SIZE_LIMIT}")
        return value

    def fetch_queue(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        return 200, self.queue_json(self.the_queue(sid))

    def update_queue(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        queue = self.the_queue(sid)
        if r.get("FriendlyName"):
            queue.friendly_name = r.get("FriendlyName") or queue.friendly_name
        if r.get("MaxSize"):
            queue.max_size = self._max_size(r)
        queue.updated_at = self.emu.now()
        return 200, self.queue_json(queue)

    def delete_queue(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        queue = self.the_queue(sid)
        if queue.members:
            raise ApiError(400, 20001, "Queue is not empty")  # code unconfirmed
        del self.emu.state.queues[sid]
        return 204, {}

    def member_json(self, queue: Queue, call: Call, position: int) -> dict[str, Any]:
        return {
            "call_sid": call.sid,
            "queue_sid": queue.sid,
            "date_enqueued": rfc2822(call.enqueued_at or call.created_at),
            "position": position,
            "wait_time": self.emu.queue_time_s(call),
            "uri": f"{self.base_uri()}/Queues/{queue.sid}/Members/{call.sid}.json",
        }

    def list_members(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        queue = self.the_queue(sid)
        members = [
            self.member_json(queue, self.emu.state.calls[c], i + 1) for i, c in enumerate(queue.members)
        ]
        return self.page(r, "queue_members", members, f"Queues/{sid}/Members")

    def _member(self, queue: Queue, member: str) -> tuple[Call, int]:
        if member == "Front":
            if not queue.members:
                raise ApiError(
                    404, 20404, f"The requested resource Queues/{queue.sid}/Members/Front was not found"
                )
            member = queue.members[0]
        if member not in queue.members:
            raise ApiError(
                404, 20404, f"The requested resource Queues/{queue.sid}/Members/{member} was not found"
            )
        return self.emu.state.calls[member], queue.members.index(member) + 1

    def fetch_member(self, r: Request, sid: str, member: str) -> tuple[int, dict[str, Any]]:
        queue = self.the_queue(sid)
        call, position = self._member(queue, member)
        return 200, self.member_json(queue, call, position)

    def dequeue_member(self, r: Request, sid: str, member: str) -> tuple[int, dict[str, Any]]:
        queue = self.the_queue(sid)
        call, position = self._member(queue, member)
        url = self.require(r, "Url", 20001, "Missing required parameter Url in the post body")
        payload = self.member_json(queue, call, position)
        self.emu.dequeue_member(call, url, (r.get("Method") or "POST").upper())
        return 200, payload

    # ---- messages ------------------------------------------------------------------------------

    def message_json(self, message: Message) -> dict[str, Any]:
        uri = f"{self.base_uri()}/Messages/{message.sid}.json"
        return {
            "sid": message.sid,
            "account_sid": message.account_sid,
            "messaging_service_sid": message.messaging_service_sid,
            "from": message.from_,
            "to": message.to,
            "body": message.body,
            "num_segments": str(message.num_segments),
            "num_media": "0",
            "status": message.status,
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": message.error_message,
            "date_created": rfc2822(message.created_at),
            "date_updated": rfc2822(message.updated_at),
            "date_sent": rfc2822(message.date_sent) if message.date_sent else None,
            "price": None,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }

    def create_message(self, r: Request) -> tuple[int, dict[str, Any]]:
        to = self.require(r, "To", 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            raise ApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        from_ = r.get("From") or ""
        service = r.get("MessagingServiceSid")
        if not from_ and not service:
            raise ApiError(400, 21603, "A 'From' phone number is required.")
        body = self.require(r, "Body", 21602, "Message body is required.")
        if len(body) > 1600:
            raise ApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        message = self.emu.send_message(from_, to, body, r.get("StatusCallback"), service)
        return 201, self.message_json(message)

    def list_messages(self, r: Request) -> tuple[int, dict[str, Any]]:
        messages = sorted(self.emu.state.messages.values(), key=lambda m: m.created_at, reverse=True)
        for name, attr in (("To", "to"), ("From", "from_")):
            wanted = r.arg(name)
            if wanted:
                messages = [m for m in messages if getattr(m, attr) == wanted]
        return self.page(r, "messages", [self.message_json(m) for m in messages], "Messages")

    def fetch_message(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        message = self.emu.state.messages.get(sid)
        if message is None:
            raise ApiError(404, 20404, f"The requested resource Messages/{sid} was not found")
        return 200, self.message_json(message)

    # ---- recordings ----------------------------------------------------------------------------

    def recording_json(self, recording: Recording) -> dict[str, Any]:
        return {
            "sid": recording.sid,
            "account_sid": recording.account_sid,
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "date_created": rfc2822(recording.created_at),
            "date_updated": rfc2822(recording.created_at),
            "start_time": rfc2822(recording.created_at),
            "duration": str(recording.duration_s),
            "channels": recording.channels,
            "source": recording.source,
            "status": recording.status,
            "price": None,
            "price_unit": "USD",
            "api_version": API_VERSION,
            "media_url": self.emu.recording_url(recording.sid),
            "uri": f"{self.base_uri()}/Recordings/{recording.sid}.json",
        }

    def the_recording(self, sid: str) -> Recording:
        recording = self.emu.state.recordings.get(sid)
        if recording is None:
            raise ApiError(404, 20404, f"The requested resource Recordings/{sid} was not found")
        return recording

    def list_recordings(self, r: Request) -> tuple[int, dict[str, Any]]:
        recordings = sorted(self.emu.state.recordings.values(), key=lambda x: x.created_at, reverse=True)
        wanted = r.arg("CallSid")
        if wanted:
            recordings = [x for x in recordings if x.call_sid == wanted]
        return self.page(r, "recordings", [self.recording_json(x) for x in recordings], "Recordings")

    def fetch_recording(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        return 200, self.recording_json(self.the_recording(sid))

    def delete_recording(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        self.the_recording(sid)
        del self.emu.state.recordings[sid]
        return 204, {}

    def recording_media(self, r: Request) -> RestResponse:
        try:
            recording = self.the_recording(r.parts[1])
        except ApiError as exc:
            return self.error(exc, False)
        headers = {}
        if r.ext == "mp3":
            # The emulator does not encode MP3: it serves the WAV and says so.
            headers["X-Koe-Emulator-Note"] = "MP3 not encoded by the emulator; this is the WAV recording"
        return RestResponse(200, recording.wav, "audio/x-wav", headers)

    # ---- conferences ---------------------------------------------------------------------------

    def conference_json(self, conference: Conference) -> dict[str, Any]:
        uri = f"{self.base_uri()}/Conferences/{conference.sid}.json"
        return {
            "sid": conference.sid,
            "account_sid": conference.account_sid,
            "friendly_name": conference.friendly_name,
            "status": conference.status,
            "region": "us1",
            "date_created": rfc2822(conference.created_at),
            "date_updated": rfc2822(conference.updated_at),
            "reason_conference_ended": conference.reason_ended,
            "call_sid_ending_conference": None,
            "api_version": API_VERSION,
            "uri": uri,
            "subresource_uris": {"participants": uri.replace(".json", "/Participants.json")},
        }

    def participant_json(self, participant: Participant) -> dict[str, Any]:
        return {
            "account_sid": self.emu.account_sid,
            "call_sid": participant.call_sid,
            "conference_sid": participant.conference_sid,
            "label": participant.label,
            "muted": participant.muted,
            "hold": participant.hold,
            "coaching": participant.coaching,
            "call_sid_to_coach": None,
            "end_conference_on_exit": participant.end_conference_on_exit,
            "start_conference_on_enter": participant.start_conference_on_enter,
            "status": participant.status,
            "date_created": rfc2822(participant.joined_at),
            "date_updated": rfc2822(participant.joined_at),
            "uri": f"{self.base_uri()}/Conferences/{participant.conference_sid}/Participants/"
            f"{participant.call_sid}.json",
        }

    def list_conferences(self, r: Request) -> tuple[int, dict[str, Any]]:
        conferences = sorted(self.emu.state.conferences.values(), key=lambda c: c.created_at, reverse=True)
        for name, attr in (("FriendlyName", "friendly_name"), ("Status", "status")):
            wanted = r.arg(name)
            if wanted:
                conferences = [c for c in conferences if getattr(c, attr) == wanted]
        return self.page(r, "conferences", [self.conference_json(c) for c in conferences], "Conferences")

    def fetch_conference(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        return 200, self.conference_json(self.the_conference(sid))

    def update_conference(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        conference = self.the_conference(sid)
        if r.get("AnnounceUrl"):
            for call_sid in conference.participants:
                self._hear(call_sid, "play", r.get("AnnounceUrl") or "")
        if r.get("Status") == "completed":
            self.emu.end_conference(conference, None, "conference-ended-via-api")
        return 200, self.conference_json(conference)

    def _participant(self, conference: Conference, key: str) -> Participant:
        participant = conference.participants.get(key) or next(
            (p for p in conference.participants.values() if p.label == key), None
        )
        if participant is None:
            raise ApiError(404, 20404, f"The requested resource Participants/{key} was not found")
        return participant

    def list_participants(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        conference = self.the_conference(sid)
        items = [self.participant_json(p) for p in conference.participants.values()]
        return self.page(r, "participants", items, f"Conferences/{sid}/Participants")

    def fetch_participant(self, r: Request, sid: str, key: str) -> tuple[int, dict[str, Any]]:
        return 200, self.participant_json(self._participant(self.the_conference(sid), key))

    def update_participant(self, r: Request, sid: str, key: str) -> tuple[int, dict[str, Any]]:
        conference = self.the_conference(sid)
        participant = self._participant(conference, key)
        hold, muted = _bool(r.get("Hold")), _bool(r.get("Muted"))
        if hold is not None and hold != participant.hold:
            participant.hold = hold
            participant.hold_url = r.get("HoldUrl")
            if hold:
                # HoldUrl: fetched with HoldMethod (default GET); audio or Play/Say/Pause/Redirect.
                method = (r.get("HoldMethod") or "GET").upper()
                self._hear_url(conference, participant, participant.hold_url, method, "hold-music")
            self.emu.conference_event(
                conference, "participant-hold" if hold else "participant-unhold", participant
            )
        if muted is not None and muted != participant.muted:
            participant.muted = muted
            self.emu.conference_event(
                conference, "participant-mute" if muted else "participant-unmute", participant
            )
        for name, attr in (("EndConferenceOnExit", "end_conference_on_exit"), ("Coaching", "coaching")):
            value = _bool(r.get(name))
            if value is not None:
                setattr(participant, attr, value)
        if r.get("AnnounceUrl"):
            # AnnounceUrl: fetched with AnnounceMethod (default POST), then announcement-end.
            method = (r.get("AnnounceMethod") or "POST").upper()
            heard = self._hear_url(conference, participant, r.get("AnnounceUrl") or "", method, "")
            event = "announcement-end" if heard else "announcement-fail"
            self.emu.conference_event(conference, event, participant)
        return 200, self.participant_json(participant)

    def remove_participant(self, r: Request, sid: str, key: str) -> tuple[int, dict[str, Any]]:
        conference = self.the_conference(sid)
        participant = self._participant(conference, key)
        call = self.emu.state.calls[participant.call_sid]
        self.emu.leave_conference(call, "participant-updated-via-api")
        return 204, {}

    def create_participant(self, r: Request, sid: str) -> tuple[int, dict[str, Any]]:
        from .executor import start_outbound

        conference = self.emu.state.conferences.get(sid) or self.emu.conference_by_name(sid)
        name = conference.friendly_name if conference else sid
        if conference is None and sid.startswith("CF"):
            self.the_conference(sid)
        to = self.require(r, "To", 21201, "No 'To' number is specified")
        from_ = self.require(r, "From", 21213, "No 'From' number is specified")
        if not (E164.match(to) or CLIENT.match(to) or to.startswith("sip:")):
            raise ApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        call = self.emu.new_call(from_, to, "outbound-api", "queued", script=self.emu.party_script(to))
        call.status_callback = r.get("StatusCallback")
        events = [e for value in r.getlist("StatusCallbackEvent") for e in value.replace(",", " ").split()]
        call.status_callback_events = frozenset(events or ["completed"])
        attrs = {
            "participantLabel": r.get("Label"),
            "startConferenceOnEnter": _bool(r.get("StartConferenceOnEnter")) is not False,
            "endConferenceOnExit": bool(_bool(r.get("EndConferenceOnExit"))),
            "muted": bool(_bool(r.get("Muted"))),
            "statusCallback": r.get("ConferenceStatusCallback"),
            "statusCallbackEvent": " ".join(r.getlist("ConferenceStatusCallbackEvent")),
        }
        start_outbound(self.emu, call, float(r.get("Timeout") or 60), (name, attrs))
        participant = Participant(
            call.sid,
            conference.sid if conference else "",
            self.emu.now(),
            label=r.get("Label"),
            status="queued",
            start_conference_on_enter=bool(attrs["startConferenceOnEnter"]),
            end_conference_on_exit=bool(attrs["endConferenceOnExit"]),
        )
        return 201, self.participant_json(participant)

    def _hear(self, call_sid: str, kind: str, content: str) -> None:
        from .model import Heard

        call = self.emu.state.calls.get(call_sid)
        if call is not None:
            call.heard.append(Heard(self.emu.now(), kind, content))

    def _hear_url(
        self, conference: Conference, participant: Participant, url: str | None, method: str, default: str
    ) -> bool:
        """What a participant hears from a HoldUrl/AnnounceUrl: an audio file is played; a TwiML
        document's Say, Play and Pause run (twilio-python's Participant update docstrings). Returns
        False when nothing could be fetched (no URL: `default` is heard, e.g. Twilio's hold music)."""
        from .model import Heard
        from .twiml import TwimlError, parse

        call = self.emu.state.calls.get(participant.call_sid)
        if call is None:
            return False
        if not url:
            if default:
                self._hear(call.sid, "play", default)
            return bool(default)
        form = [
            ("AccountSid", self.emu.account_sid),
            ("CallSid", participant.call_sid),
            ("ConferenceSid", conference.sid),
        ]
        outcome = self.emu.webhooks.request(url, method, form, call.sid)
        if not outcome.ok or outcome.response is None:
            return False
        ctype = outcome.response.content_type.split(";")[0].strip().lower()
        if ctype.startswith("audio/"):
            self._hear(call.sid, "play", url)
            return True
        try:
            verbs = parse(outcome.response.body)
        except TwimlError as exc:
            self.emu.record_error(12100, url, call.sid, f"Document parse failure: {exc}")
            return False
        now = self.emu.now()
        for verb in verbs:
            if verb.name == "Say":
                call.heard.append(Heard(now, "say", verb.text.strip(), verb.get("language") or None))
            elif verb.name == "Play":
                call.heard.append(Heard(now, "play", verb.text.strip()))
        return True


def _xml(payload: dict[str, Any]) -> str:
    """Twilio's XML format, minimally: <TwilioResponse> with PascalCase elements."""

    def pascal(name: str) -> str:
        return "".join(part[:1].upper() + part[1:] for part in name.split("_"))

    def render(value: Any, name: str) -> str:
        tag = pascal(name)
        if isinstance(value, dict):
            return f"<{tag}>" + "".join(render(v, k) for k, v in value.items()) + f"</{tag}>"
        if isinstance(value, list):
            return f"<{tag}>" + "".join(render(v, name.rstrip("s")) for v in value) + f"</{tag}>"
        if value is None:
            return f"<{tag}/>"
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f"<{tag}>{escape(text)}</{tag}>"

    return (
        '<?xml version="1.0" encoding="UTF-8"?><TwilioResponse>'
        + "".join(render(v, k) for k, v in payload.items())
        + "</TwilioResponse>"
    )
