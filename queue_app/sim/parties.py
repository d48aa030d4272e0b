"""The simulated people: callers with a script, operators' browser devices, and phone numbers.

A party decides how a leg rings out (answer after N s, busy, decline, never) and, once a leg is
answered, how its person behaves while TwiML runs (digits to press, patience, how long they talk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Press:
    """Press `digits` `after` seconds into the call, or at the first Gather that listens after that.

    Steps are taken in order: the next step only starts counting once this one has been pressed.
    `after` counts from the previous press (or the start of the call for the first step) when
    `relative` is true.
    """

    digits: str
    after: float = 0.0
    relative: bool = False

    @classmethod
    def of(cls, step: Press | dict[str, Any]) -> Press:
        if isinstance(step, Press):
            return step
        return cls(str(step["digits"]), float(step.get("after", 0)), bool(step.get("relative", False)))


@dataclass
class CallerScript:
    """How a person on an answered leg behaves.

    - `presses`: e.g. `[{"after": 30, "digits": "1"}]`; a key press reaches a Gather only while it
      listens (digits pressed at other times are lost, as on a real phone), so each step waits for
      the next listening Gather and is pressed `reaction_s` after it starts listening.
    - `patience`: hang up this many seconds after the call starts, unless bridged by then.
    - `hang_up_after_hearing`: hang up once a Say/Play containing this text has finished.
    - `talk_for`: once bridged to someone, hang up after this many seconds (None: the other side ends).
    - `speak_for`: seconds of speech a `<Record>` gets before the caller goes silent (0: silence).
    """

    presses: list[Any] = field(default_factory=list)
    patience: float | None = None
    hang_up_after_hearing: str | None = None
    talk_for: float | None = None
    speak_for: float = 5.0
    reaction_s: float = 1.0

    def __post_init__(self) -> None:
        self.presses = [Press.of(p) for p in self.presses]


RingResult = Literal["answer", "busy", "no-answer", "failed", "silent"]


@dataclass(frozen=True)
class RingOutcome:
    """What happens to a ringing leg: `result` after `after_s` seconds of ringing.

    `silent` means nothing ever happens (the leg rings until the dialler's timeout).
    `rings` is false when the leg never reaches `ringing` (failed numbers).
    """

    result: RingResult
    after_s: float
    rings: bool = True


ClientMode = Literal["answer", "decline", "ignore", "busy"]


@dataclass(frozen=True)
class ClientDevice:
    """An operator's browser (Voice SDK Device) registered under an identity.

    - `answer`: `call.accept()` after `answer_after` s.
    - `decline`: `call.reject()` after `answer_after` s; the Dial sees `busy` (twilio.md §6).
    - `ignore`: `call.ignore()`: rings until the dialler's timeout.
    - `busy`: already on a call with allowIncomingWhileBusy=false: the invite is dropped silently,
      so the Dial rings until its timeout and ends `no-answer` (twilio.md §6 "Busy device").
    `registered=False` is an identity with no Device: the leg ends `no-answer` almost at once.
    With `auto_busy`, a device that is on an emulated call behaves as `busy`.
    """

    mode: ClientMode = "answer"
    answer_after: float = 2.0
    registered: bool = True
    auto_busy: bool = True
    script: CallerScript = field(default_factory=CallerScript)

    def ring(self, on_a_call: bool, unregistered_after_s: float = 0.5) -> RingOutcome:
        if not self.registered:
            return RingOutcome("no-answer", unregistered_after_s)
        if self.mode == "busy" or (self.auto_busy and on_a_call):
            return RingOutcome("silent", 0.0)
        if self.mode == "decline":
            return RingOutcome("busy", self.answer_after)
        if self.mode == "ignore":
            return RingOutcome("silent", 0.0)
        return RingOutcome("answer", self.answer_after)


UNREGISTERED_CLIENT = ClientDevice(registered=False)

NumberMode = Literal["answer", "busy", "no-answer", "failed", "voicemail"]


@dataclass(frozen=True)
class PhoneNumber:
    """A phone at the far end of a `<Dial><Number>` or a REST call.

    `answer` after `answer_after` s; `busy` (the network reports busy after `busy_after` s);
    `no-answer` (rings forever); `failed` (unroutable: no ringing); `voicemail` (answers at once and
    wins any parallel dial, twilio.md §3 "An auto-answering phone always wins").
    """

    mode: NumberMode = "answer"
    answer_after: float = 3.0
    busy_after: float = 1.0
    script: CallerScript = field(default_factory=CallerScript)

    def ring(self) -> RingOutcome:
        if self.mode == "busy":
            return RingOutcome("busy", self.busy_after)
        if self.mode == "no-answer":
            return RingOutcome("silent", 0.0)
        if self.mode == "failed":
            return RingOutcome("failed", 0.0, rings=False)
        if self.mode == "voicemail":
            return RingOutcome("answer", 0.0)
        return RingOutcome("answer", self.answer_after)


# The default for a number nobody registered: it rings and nobody answers.
UNKNOWN_NUMBER = PhoneNumber(mode="no-answer")
