"""Parsing TwiML into plain nodes, and the checks that make Twilio answer 12100.

Twilio's rules (twilio.md §1 "TwiML rules"): the root is `<Response>`, names are case-sensitive,
comments are ignored, whitespace before `<?xml` is a parse error, and noun text is trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree

VERBS = frozenset(
    {
        "Say", "Play", "Pause", "Gather", "Record", "Redirect", "Hangup", "Reject", "Enqueue", "Leave",
        "Dial", "Sms", "Message", "Connect", "Start", "Stop", "Refer", "Pay", "Prompt",
    }
)  # fmt: skip
SUPPORTED_VERBS = frozenset(
    {"Say", "Play", "Pause", "Gather", "Record", "Redirect", "Hangup", "Reject", "Enqueue", "Leave", "Dial"}
)
GATHER_CHILDREN = frozenset({"Say", "Play", "Pause"})
DIAL_NOUNS = frozenset({"Number", "Client", "Queue", "Conference", "Sip", "Application", "WhatsApp"})
# twilio.md §3 Enqueue: the verbs a waitUrl document may hold; anything else is QueueResult=error.
WAIT_URL_VERBS = frozenset({"Play", "Say", "Pause", "Hangup", "Redirect", "Leave", "Gather"})
# twilio.md §3 Whisper: only Play, Say, Gather and Hangup (no Dial). Pause is harmless and allowed.
WHISPER_VERBS = frozenset({"Play", "Say", "Pause", "Gather", "Hangup"})


class TwimlError(ValueError):
    """The document is not valid TwiML: Twilio logs 12100 (Document parse failure)."""


@dataclass
class Node:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: list[Node] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.attrs.get(name)
        return default if value is None else value.strip().lower() == "true"

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.attrs[name])
        except (KeyError, ValueError):
            return default


def parse(document: str | bytes) -> list[Node]:
    """The verbs of a TwiML document, top-down; raises TwimlError as Twilio would report 12100."""
    text = document.decode("utf-8", errors="replace") if isinstance(document, bytes) else document
    if text[:1].isspace() and text.lstrip().startswith("<?xml"):
        raise TwimlError("whitespace before the XML declaration")
    try:
        root = ElementTree.fromstring(text.strip() if not text.lstrip().startswith("<?xml") else text)
    except ElementTree.ParseError as exc:
        raise TwimlError(f"XML parse error: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, not <Response>")
    verbs = [_node(child) for child in root]
    for verb in verbs:
        if verb.name not in VERBS:
            raise TwimlError(f"<{verb.name}> is not a TwiML verb")
        if verb.name == "Gather":
            for child in verb.children:
                if child.name not in GATHER_CHILDREN:
                    raise TwimlError(f"<{child.name}> may not be nested in <Gather>")
        if verb.name == "Dial":
            for child in verb.children:
                if child.name not in DIAL_NOUNS:
                    raise TwimlError(f"<{child.name}> is not a <Dial> noun")
    return verbs


def _node(element: ElementTree.Element) -> Node:
    return Node(
        name=element.tag,
        attrs={key: value for key, value in element.attrib.items()},
        text=(element.text or "").strip(),
        children=[_node(child) for child in element],
    )
