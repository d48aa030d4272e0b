"""The TwiML builders, parsed back with ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_app.telephony import twiml
from queue_app.telephony.twiml import Music, Utterance

BASE = "https://koe.example"


def parse(document: str) -> ET.Element:
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(document)
    assert root.tag == "Response"
    return root


def test_it_enqueues_with_absolute_wait_and_action_urls() -> None:
    root = parse(twiml.enqueue(BASE + "/", 7, [twiml.spoken("Välkommen till Exempelbolaget.", "sv")]))
    say, enqueue = list(root)
    assert say.text == "Välkommen till Exempelbolaget."
    assert say.attrib == {"language": "sv-SE", "voice": "Polly.Astrid"}
    assert enqueue.text == "koe-caller-7"
    assert enqueue.attrib == {
        "waitUrl": f"{BASE}/twilio/wait",
        "waitUrlMethod": "POST",
        "action": f"{BASE}/twilio/queue-result",
        "method": "POST",
    }


def test_it_escapes_user_text() -> None:
    document = twiml.enqueue(BASE, 1, [twiml.spoken("Välkommen till A & <B>.", "sv")])
    assert "A &amp; &lt;B&gt;." in document
    assert parse(document).find("Say").text == "Välkommen till A & <B>."  # type: ignore[union-attr]


def test_it_plays_a_recorded_prompt_and_makes_its_url_absolute() -> None:
    root = parse(twiml.say_and_hang_up(BASE, [Utterance(audio_url="/twilio/audio/hej.wav")]))
    assert [c.tag for c in root] == ["Play", "Hangup"]
    assert root[0].text == f"{BASE}/twilio/audio/hej.wav"


def test_it_picks_a_voice_that_fits_the_language() -> None:
    assert twiml.spoken("Hello", "en") == Utterance("Hello", None, "en-GB", "Polly.Amy")
    assert twiml.spoken("Hello", "en-US").voice == "Polly.Joanna"
    assert twiml.spoken("Hej", "sv", "Polly.Elin-Neural").voice == "Polly.Elin-Neural"


def test_it_loops_the_hold_music_to_fill_the_document() -> None:
    root = parse(twiml.wait(BASE, [twiml.spoken("Du är först i kön.", "sv")], Music("/hold.wav", 10.0), 30))
    assert [c.tag for c in root] == ["Say", "Play"]
    assert root[1].attrib == {"loop": "3"}
    assert root[1].text == f"{BASE}/hold.wav"


def test_it_plays_music_of_unknown_length_once_and_pauses_without_music() -> None:
    once = parse(twiml.wait(BASE, [], Music("https://cdn.example/song.mp3"), 25))
    assert once[0].attrib == {"loop": "1"}
    silent = parse(twiml.wait(BASE, [], None, 25))
    assert silent[0].tag == "Pause"
    assert silent[0].attrib == {"length": "25"}


def test_it_answers_an_empty_document() -> None:
    assert list(parse(twiml.empty())) == []


UTTERANCES = st.one_of(
    # XML has no place for control characters, whoever writes the document.
    st.builds(
        twiml.spoken,
        st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80),
        st.sampled_from(["sv", "en"]),
    ),
    st.builds(Utterance, audio_url=st.sampled_from(["/twilio/audio/a.mp3", "https://cdn.example/x?a=1&b=2"])),
)
MUSIC = st.one_of(
    st.none(),
    st.builds(
        Music,
        st.sampled_from(["/twilio/audio/hold.mp3", "https://cdn.example/m&n.wav"]),
        st.one_of(st.none(), st.floats(min_value=1, max_value=600)),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(UTTERANCES, max_size=4), MUSIC, st.integers(min_value=0, max_value=120))
def test_a_wait_document_joined_from_remembered_elements_is_the_one_the_library_writes(
    utterances: list[Utterance], music: Music | None, music_seconds: int
) -> None:
    """Texts with markup characters, audio and music URLs with `&`, no music, nothing at all."""
    joined = twiml.wait(BASE, utterances, music, music_seconds)
    assert joined == twiml._library_wait_document(BASE, tuple(utterances), music, music_seconds, None)
    parse(joined)
