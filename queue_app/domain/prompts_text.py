"""The default phrases a caller hears, in Swedish and English, when no prompt has been recorded.

Numbers are written out as words ("nummer två", "ungefär tre minuter"): text-to-speech then has
nothing to guess (Swedish "en minut" but "nummer ett"; digits read together as one number), and
what is said is exactly what the tests read.
"""

from __future__ import annotations

from enum import StrEnum

from .estimates import SpokenWait, WaitKind


class Phrase(StrEnum):
    WELCOME = "welcome"
    FIRST_QUEUE_MESSAGE = "first_queue_message"
    PERIODIC_MESSAGE = "periodic_message"
    POSITION = "position"
    EXPECTED_WAIT = "expected_wait"
    RETURNED_TO_QUEUE = "returned_to_queue"
    UNKNOWN_NUMBER = "unknown_number"
    TECHNICAL_ERROR = "technical_error"
    QUEUE_FULL = "queue_full"
    GOODBYE = "goodbye"
    CLOSED_HOURS = "closed_hours"
    CLOSED_HOLIDAY = "closed_holiday"
    CLOSED_CLOSURE = "closed_closure"
    OVERFLOW = "overflow"
    NO_OPERATOR = "no_operator"
    OPTION_CALLBACK = "option_callback"
    OPTION_VOICEMAIL = "option_voicemail"
    CALLBACK_CONFIRMED = "callback_confirmed"
    VOICEMAIL_PROMPT = "voicemail_prompt"
    VOICEMAIL_THANKS = "voicemail_thanks"
    INVALID_CHOICE = "invalid_choice"
    CALLBACK_NO_ANSWER = "callback_no_answer"  # said to the operator after a callback nobody took
    CALLBACK_GIVEN_UP = "callback_given_up"


LANGUAGES = ("sv", "en")

_SV_ONES = (
    *("noll", "ett", "två", "tre", "fyra", "fem", "sex", "sju", "åtta", "nio", "tio"),
    *("elva", "tolv", "tretton", "fjorton", "femton", "sexton", "sjutton", "arton", "nitton"),
)
_SV_TENS = {
    2: "tjugo",
    3: "trettio",
    4: "fyrtio",
    5: "femtio",
    6: "sextio",
    7: "sjuttio",
    8: "åttio",
    9: "nittio",
}
_EN_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
)
_EN_TENS = {
    2: "twenty",
    3: "thirty",
    4: "forty",
    5: "fifty",
    6: "sixty",
    7: "seventy",
    8: "eighty",
    9: "ninety",
}


def swedish_number(n: int, common_gender: bool = False) -> str:
    """0..999 as one Swedish word ("tjugotre", "hundrafem"); larger numbers stay digits.

    `common_gender` gives "en" for a trailing one ("en minut", "tjugoen minuter"); counting and
    neuter nouns take "ett" ("nummer ett").
    """
    if n < 0 or n > 999:
        return str(n)
    hundreds, rest = divmod(n, 100)
    words = ""
    if hundreds:
        words = ("" if hundreds == 1 else _SV_ONES[hundreds]) + "hundra"
        if rest == 0:
            return words
    if rest < 20:
        word = _SV_ONES[rest]
    else:
        tens, ones = divmod(rest, 10)
        word = _SV_TENS[tens] + (_SV_ONES[ones] if ones else "")
    if common_gender and word.endswith("ett") and rest % 10 == 1 and rest != 11:
        word = word[: -len("ett")] + "en"
    return words + word


def english_number(n: int) -> str:
    """0..999 in British English words ("twenty-three", "one hundred and five")."""
    if n < 0 or n > 999:
        return str(n)
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(f"{_EN_ONES[hundreds]} hundred")
    if rest or not hundreds:
        if rest < 20:
            word = _EN_ONES[rest]
        else:
            tens, ones = divmod(rest, 10)
            word = _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")
        parts.append(word)
    return " and ".join(parts)


def _sv_wait(wait: SpokenWait) -> str:
    if wait.kind is WaitKind.LESS_THAN_A_MINUTE:
        return "Beräknad väntetid är mindre än en minut."
    if wait.kind is WaitKind.MORE_THAN_AN_HOUR:
        return "Beräknad väntetid är mer än en timme."
    unit = "minut" if wait.minutes == 1 else "minuter"
    return f"Beräknad väntetid är ungefär {swedish_number(wait.minutes, common_gender=True)} {unit}."


def _en_wait(wait: SpokenWait) -> str:
    if wait.kind is WaitKind.LESS_THAN_A_MINUTE:
        return "The estimated waiting time is less than a minute."
    if wait.kind is WaitKind.MORE_THAN_AN_HOUR:
        return "The estimated waiting time is more than an hour."
    unit = "minute" if wait.minutes == 1 else "minutes"
    return f"The estimated waiting time is about {english_number(wait.minutes)} {unit}."


_FIXED = {
    "sv": {
        Phrase.FIRST_QUEUE_MESSAGE: (
            "Just nu är alla våra telefonister upptagna. "
            "Var vänlig dröj kvar, så kopplas du fram så snart någon blir ledig."
        ),
        Phrase.PERIODIC_MESSAGE: "Tack för att du väntar. Du kopplas fram så snart en telefonist blir ledig.",
        Phrase.RETURNED_TO_QUEUE: "Du har kvar din plats i kön.",
        Phrase.UNKNOWN_NUMBER: "Tyvärr kan det här numret inte ta emot samtal just nu. Hej då.",
        Phrase.TECHNICAL_ERROR: "Tyvärr uppstod ett tekniskt fel. Försök gärna igen om en stund. Hej då.",
        Phrase.QUEUE_FULL: "Just nu ringer väldigt många. Försök gärna igen om en stund. Hej då.",
        Phrase.GOODBYE: "Tack för att du ringde. Hej då.",
        Phrase.CLOSED_HOURS: (
            "Vi har stängt just nu. Välkommen att ringa igen under våra öppettider. Hej då."
        ),
        Phrase.CLOSED_HOLIDAY: "Vi har helgstängt i dag. Välkommen att ringa igen en vardag. Hej då.",
        Phrase.CLOSED_CLOSURE: "Vi har tillfälligt stängt. Försök gärna igen senare. Hej då.",
        Phrase.OVERFLOW: (
            "Just nu ringer väldigt många och kön är full. Försök gärna igen om en stund. Hej då."
        ),
        Phrase.NO_OPERATOR: (
            "Just nu finns ingen telefonist som kan ta emot ditt samtal. Försök gärna igen senare. Hej då."
        ),
        Phrase.OPTION_CALLBACK: (
            "Om du vill att vi ringer upp dig i stället för att vänta, tryck 1. Du behåller din plats i kön."
        ),
        Phrase.OPTION_VOICEMAIL: "Om du vill lämna ett meddelande, tryck 2.",
        Phrase.CALLBACK_CONFIRMED: (
            "Tack. Vi ringer upp dig på numret du ringer från när det är din tur. Du kan lägga på nu."
        ),
        Phrase.VOICEMAIL_PROMPT: (
            "Tala in ditt meddelande efter tonen. Tryck fyrkant eller lägg på när du är klar."
        ),
        Phrase.VOICEMAIL_THANKS: "Tack för ditt meddelande. Vi återkommer så snart vi kan. Hej då.",
        Phrase.INVALID_CHOICE: "Det valet finns inte. Du har kvar din plats i kön.",
        Phrase.CALLBACK_NO_ANSWER: "Ingen svarade. Vi försöker igen senare.",
        Phrase.CALLBACK_GIVEN_UP: (
            "Ingen svarade. Vi har försökt flera gånger, så samtalet ligger kvar bland de missade samtalen."
        ),
    },
    "en": {
        Phrase.FIRST_QUEUE_MESSAGE: (
            "All our operators are busy at the moment. "
            "Please stay on the line, and you will be connected as soon as someone is free."
        ),
        Phrase.PERIODIC_MESSAGE: (
            "Thank you for holding. You will be connected as soon as an operator is free."
        ),
        Phrase.RETURNED_TO_QUEUE: "You keep your place in the queue.",
        Phrase.UNKNOWN_NUMBER: "Sorry, this number cannot take calls at the moment. Goodbye.",
        Phrase.TECHNICAL_ERROR: (
            "We are sorry, a technical error occurred. Please try again shortly. Goodbye."
        ),
        Phrase.QUEUE_FULL: (
            "We are receiving a very large number of calls. Please try again shortly. Goodbye."
        ),
        Phrase.GOODBYE: "Thank you for calling. Goodbye.",
        Phrase.CLOSED_HOURS: (
            "We are closed at the moment. Please call again during our opening hours. Goodbye."
        ),
        Phrase.CLOSED_HOLIDAY: (
            "We are closed today for the holiday. Please call again on a working day. Goodbye."
        ),
        Phrase.CLOSED_CLOSURE: "We are temporarily closed. Please try again later. Goodbye.",
        Phrase.OVERFLOW: "Our queue is full at the moment. Please try again shortly. Goodbye.",
        Phrase.NO_OPERATOR: (
            "There is no operator available to take your call at the moment. Please try again later. Goodbye."
        ),
        Phrase.OPTION_CALLBACK: (
            "If you would like us to call you back instead of waiting, press 1. "
            "You keep your place in the queue."
        ),
        Phrase.OPTION_VOICEMAIL: "To leave a message, press 2.",
        Phrase.CALLBACK_CONFIRMED: (
            "Thank you. We will call you back on the number you are calling from when it is your turn. "
            "You can hang up now."
        ),
        Phrase.VOICEMAIL_PROMPT: (
            "Please leave your message after the tone. Press the hash key or hang up when you are done."
        ),
        Phrase.VOICEMAIL_THANKS: (
            "Thank you for your message. We will get back to you as soon as we can. Goodbye."
        ),
        Phrase.INVALID_CHOICE: "That is not one of the choices. You keep your place in the queue.",
        Phrase.CALLBACK_NO_ANSWER: "Nobody answered. We will try again later.",
        Phrase.CALLBACK_GIVEN_UP: (
            "Nobody answered. We have tried several times, so the call stays in the list of missed calls."
        ),
    },
}


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else "sv"


def welcome(language: str, organisation_name: str) -> str:
    if language_or_default(language) == "en":
        return f"Welcome to {organisation_name}."
    return f"Välkommen till {organisation_name}."


def position(language: str, n: int) -> str:
    """ "Du är nummer två i kön." The caller at the head hears that they are first."""
    if language_or_default(language) == "en":
        return (
            "You are first in the queue." if n == 1 else f"You are number {english_number(n)} in the queue."
        )
    return "Du är först i kön." if n == 1 else f"Du är nummer {swedish_number(n)} i kön."


def expected_wait(language: str, wait: SpokenWait) -> str:
    return _en_wait(wait) if language_or_default(language) == "en" else _sv_wait(wait)


def fixed(language: str, phrase: Phrase) -> str:
    """A phrase with no variable part (first queue message, apology, goodbye …)."""
    return _FIXED[language_or_default(language)][phrase]


def bilingual(phrase: Phrase) -> tuple[tuple[str, str], ...]:
    """(language, text) in Swedish, then English: for callers whose language we do not know."""
    return tuple((lang, _FIXED[lang][phrase]) for lang in LANGUAGES)


def spoken_number(number: str, language: str) -> str:
    """A phone number digit by digit ("0 7 0 1 2 3 …"), national form for Swedish numbers in Swedish."""
    digits = number.strip().replace(" ", "")
    if language_or_default(language) == "sv" and digits.startswith("+46"):
        digits = "0" + digits[3:]
    return " ".join("plus" if ch == "+" else ch for ch in digits if ch.isdigit() or ch == "+")


def callback_whisper(language: str, number: str, queue_name: str) -> str:
    """What the operator hears before a callback is dialled: whom they call, and from which queue."""
    spoken = spoken_number(number, language)
    if language_or_default(language) == "en":
        return f"Calling back {spoken}, who was waiting in the queue {queue_name}."
    return f"Återuppringning till {spoken}, som väntade i kön {queue_name}."


_CONSULT_BACK = {
    "sv": {
        "busy": "{name} är upptagen.",
        "no_answer": "{name} svarar inte.",
        "failed": "{name} gick inte att nå.",
        "colleague_hung_up": "{name} lade på.",
    },
    "en": {
        "busy": "{name} is busy.",
        "no_answer": "{name} is not answering.",
        "failed": "{name} could not be reached.",
        "colleague_hung_up": "{name} hung up.",
    },
}
_BACK_WITH_CALLER = {"sv": "Du är tillbaka hos den som ringer.", "en": "You are back with the caller."}
_SOMEONE = {"sv": ("Kollegan", "kollegan"), "en": ("Your colleague", "your colleague")}


def consult_back(language: str, name: str, reason: str) -> str:
    """Said to the operator when a consult ends without the colleague: why, and where they are."""
    lang = language_or_default(language)
    said = _CONSULT_BACK[lang].get(reason, "")
    if said:
        said = said.format(name=name or _SOMEONE[lang][0]) + " "
    return said + _BACK_WITH_CALLER[lang]


_CALLER_RECALLED = {
    "sv": "Vi kopplar dig tillbaka till växeln.",
    "en": "We are putting you back to the switchboard.",
}


def consult_caller_recalled(language: str) -> str:
    """Said to a caller on hold whose operator left the consult: they go back to the switchboard."""
    return _CALLER_RECALLED[language_or_default(language)]


def camp_on_busy(language: str, name: str) -> str:
    """A caller camping on a busy colleague hears why and what happens next."""
    if language_or_default(language) == "en":
        if not name:
            return (
                "The person you are calling is busy on another call. Please hold, "
                "and we will try to put you through again shortly."
            )
        return (
            f"{name} is busy on another call. You are now waiting for {name}, "
            "and we will try to put you through again shortly."
        )
    if not name:
        return (
            "Personen du söker pratar i ett annat samtal just nu. Var vänlig dröj kvar, "
            "så försöker vi koppla dig igen om en liten stund."
        )
    return (
        f"{name} pratar i ett annat samtal just nu. Du väntar nu på {name}, "
        "och vi försöker koppla dig igen om en liten stund."
    )


def camp_on_still_busy(language: str, name: str) -> str:
    """The periodic update while camping on: still busy, still waiting, we keep trying."""
    if language_or_default(language) == "en":
        who = f"{name} is" if name else "The line is"
        return f"{who} still busy. Please hold, we are still trying to put you through."
    who = f"{name} pratar" if name else "Linjen är"
    rest = "fortfarande i telefon." if name else "fortfarande upptagen."
    return f"{who} {rest} Var vänlig dröj kvar, vi försöker fortfarande koppla dig."


def press_one(language: str) -> str:
    """Asked of an operator who answers on a phone: a voicemail never presses 1."""
    if language_or_default(language) == "en":
        return "Press 1 to take the call."
    return "Tryck 1 för att ta samtalet."
