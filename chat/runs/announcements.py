"""Does the leader's text announce handing work to a member? (English and Danish; pure, no I/O.)

Written by hand rather than with an NLP library: the question is narrow (a first-person
announcement whose object is a team member), the two languages are fixed, and a
dependency-free set of patterns can be read, tested against the labelled fixtures in
tests/runs/fixtures/delegation/ and corrected in one place.

A sentence announces a delegation when it has
1. a first-person announcement: "I'll / I will / I'm going to / let me / I've / I" + verb
   (ask, check with, consult, get, have, bring in, hand, pass, send, forward, delegate ...),
   or in Danish "jeg (vil/skal/har/lige) / lad mig" + verb (spørger, beder, får, sender
   videre, giver videre, overdrager, delegerer ...) or the inverted "nu/så spørger jeg";
2. whose object is a member: its name ("Research Specialist"), id, a compound of its role word
   ("researchspecialisten", "the audio team"), a person form ("the researcher", "forskeren"),
   or a generic teammate ("a specialist", "my colleague", "eksperten");
and it is not a question, an offer ("if you want ...", "hvis du vil ..."), or negated: a
negation right before the announcement ("rather than I ask", "uden at jeg spørger", "not that
I'll ask"), right after its verb ("I'll not ask", "jeg spørger ikke ...") or right after its
object ("jeg spørger forskeren ikke"; but "beder forskeren ikke at ..." still asks).
"Delegate" itself needs no object. One announcement can name several members ("the Research
Specialist and the Image Specialist", "forskeren og billedspecialisten"): each one counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Role words of member names, with their Danish forms and person nouns ("researcher").
ROLE_FORMS: dict[str, tuple[str, ...]] = {
    "research": ("research", "forsknings", "forsker"),
    "audio": ("audio", "lyd"),
    "video": ("video",),
    "image": ("image", "billed", "billede"),
    "document": ("document", "dokument"),
}
PERSON_FORMS: dict[str, tuple[str, ...]] = {"research": ("researcher", "forsker")}
PERSON_NOUNS = r"(?:specialist|expert|team|colleague|agent|person|people|ekspert|kollega|folk|hold)"
GENERIC_TARGETS = (r"(?:specialists?|experts?|colleagues?|teammates?|team(?:\s+members?)?|analysts?|"
                   r"specialist\w*|ekspert\w*|kolleg\w*|teamet|holdet|researchere?n?|forskere?n?)")
FILLERS = (r"(?:(?:the|our|my|a|an|one|of|relevant|dedicated|right|two|both|vores|min|mit|den|det|en|et|"
           r"lige|straks|også|med|de|relevante|af|mine)\s+)*")

_EN_SUBJECT = (r"(?:\bi'?ll|\bi\s+will|\bi'?m\s+(?:going\s+to|gonna)|\bi\s+am\s+going\s+to|\blet\s+me|"
               r"\bi'?d\s+like\s+to|\bi'?ve|\bi\s+have|\bi'?m|\bi\s+am|\bi\s+shall|\bi)")
_EN_ADVERBS = r"(?:\s+(?:now|just|quickly|first|also|right\s+away|go\s+ahead\s+and|immediately|gladly|then))*"
_EN_ASK = (r"(?:ask(?:ing|ed)?|check(?:ing|ed)?\s+with|consult(?:ing|ed)?|get(?:ting)?|have|having|"
           r"bring(?:ing)?\s+in|brought\s+in|loop(?:ing|ed)?\s+in|reach(?:ing|ed)?\s+out\s+to|involv(?:e|ing|ed)|"
           r"pull(?:ing|ed)?\s+in|turn(?:ing|ed)?\s+to|contact(?:ing|ed)?|ping(?:ing|ed)?|call(?:ing|ed)?\s+on)")
_EN_HAND = (r"(?:hand(?:ing|ed)?|pass(?:ing|ed)?|forward(?:ing|ed)?|send(?:ing)?|sent|rout(?:e|ing|ed)|"
            r"assign(?:ing|ed)?|refer(?:ring|red)?|transfer(?:ring|red)?)")
_EN_DELEGATE = r"(?:delegat(?:e|ing|ed))"
_DA_SUBJECT = (r"(?:\bjeg(?:\s+(?:vil|skal|har|lige|nu|straks|gerne|går\s+i\s+gang\s+med\s+at))*"
               r"|\blad\s+mig(?:\s+lige)?)")
_DA_ASK = (r"(?:spørger|spørge|spurgt|beder|bede|bedt|får|få|fået|lader|lade|ladet|sætter|sætte|sat|"
           r"tager\s+fat\s+i|tage\s+fat\s+i|kontakter|kontakte|inddrager|inddrage|tjekker\s+med|tjekke\s+med|"
           r"hører|høre|hørt|rådfører\s+mig\s+med|rådføre\s+mig\s+med)")
_DA_HAND = (r"(?:sender|sende|sendt|giver|give|givet|videresender|videresende|overdrager|overdrage|overlader|"
            r"overlade|spiller|spille)")
_DA_DELEGATE = r"(?:delegerer|delegere|uddelegerer|uddelegere)"

ANNOUNCE = re.compile(
    rf"(?P<en>{_EN_SUBJECT}{_EN_ADVERBS}\s+(?:(?P<en_ask>{_EN_ASK})|(?P<en_hand>{_EN_HAND})|(?P<en_del>{_EN_DELEGATE})))\b"
    rf"|(?P<da>{_DA_SUBJECT}\s+(?:(?P<da_ask>{_DA_ASK})|(?P<da_hand>{_DA_HAND})|(?P<da_del>{_DA_DELEGATE})))\b"
    rf"|(?P<inv>\b(?:nu|så|derfor|først)\s+(?:(?P<inv_ask>{_DA_ASK})|(?P<inv_hand>{_DA_HAND}))\s+jeg)\b"
    rf"|(?P<bare>^(?:(?P<bare_hand>handing|passing|forwarding|sending)|(?P<bare_del>delegating)))\b",
)
OFFER = re.compile(r"\b(?:if\s+you(?:'d)?\s+(?:want|like|prefer|wish)|should\s+you\s+want|hvis\s+du\s+(?:vil|ønsker|"
                   r"har\s+lyst|gerne\s+vil)|om\s+du\s+vil)\b")
NEGATED_BEFORE = re.compile(r"\b(?:not\s+that|ikke\s+fordi|ikke\s+(?:sådan\s+)?at|"
                            r"rather\s+than|instead\s+of|without|no\s+need|i\s+won'?t|i\s+don'?t|i\s+do\s+not|"
                            r"i\s+will\s+not|i\s+can'?t|i\s+cannot|i\s+didn'?t|i\s+did\s+not|i\s+haven'?t|not|never|"
                            r"ikke|aldrig|i\s+stedet\s+for|frem\s+for|uden\s+at)\s*$")
NEGATED_AFTER = re.compile(r"^\s*(?:not|never|ikke|aldrig)\b")
# Danish puts the negation after a short object: "jeg spørger forskeren ikke" (not "... ikke at").
NEGATED_AFTER_OBJECT = re.compile(r"^\s*(?:ikke|aldrig)\b(?!\s+(?:om\s+)?at\b)")
# What joins a further member to the first: "the X and the Y", "X, Y og Z", "X as well as Y".
AND_ALSO = re.compile(r"^\s*(?:,\s*(?:(?:and|og)\s+)?|(?:and|og|samt|plus|&|as\s+well\s+as)\s+)"
                      r"(?:(?:then|also|så|også|derefter)\s+)?")
GENERIC = re.compile(GENERIC_TARGETS + r"\b")
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Announcement:
    member: str  # the member id, or "" for a generic teammate / a bare "delegate"
    sentence: str


def _normal(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def member_patterns(member_id: str, name: str = "", aliases: Sequence[str] = ()) -> re.Pattern:
    """What names a member as a person: name, id, role compound, person form, extra aliases."""
    forms = {member_id.replace("-", " ").replace("_", " ")}
    if name:
        forms.add(name.lower())
    forms.update(a.lower() for a in aliases)
    words = [w for w in re.split(r"[\s_-]+", (name or member_id).lower()) if w]
    role = words[0] if words else ""
    alternatives = [r"[\s-]*".join(map(re.escape, f.split())) + r"\w*" for f in forms if f.strip()]
    for stem in {role, *ROLE_FORMS.get(role, ())} - {""}:
        alternatives.append(rf"{re.escape(stem)}[\s-]*{PERSON_NOUNS}\w*")
    alternatives += [rf"{re.escape(p)}\w*" for p in PERSON_FORMS.get(role, ())]
    return re.compile(r"^(?:" + "|".join(sorted(alternatives, key=len, reverse=True)) + r")")


def _target(rest: str, members: Sequence[tuple[str, re.Pattern]], *, after_to: bool) -> tuple[str, int] | None:
    """The member the text right after the verb names (its id, "" for a generic teammate) and
    where that name ends in `rest`; None if it names no teammate."""
    starts = [0]
    if after_to:  # hand / pass / send ... "to" the member, possibly after an object ("this", "opgaven")
        starts = [m.end() for m in re.finditer(r"\b(?:to|til)\s+", rest)]
    for start in starts:
        named = _name_at(rest, start, members)
        if named is not None:
            return named
    return None


def _name_at(text: str, start: int, members: Sequence[tuple[str, re.Pattern]]) -> tuple[str, int] | None:
    """The member (or generic teammate, "") named at `start` of `text`, after fillers, and its end."""
    start += re.match(rf"\s*{FILLERS}", text[start:]).end()
    for member_id, pattern in members:
        if (named := pattern.match(text[start:])) is not None:
            return member_id, start + named.end()
    if (generic := GENERIC.match(text[start:])) is not None:
        return "", start + generic.end()
    return None


def _targets(rest: str, members: Sequence[tuple[str, re.Pattern]], *, after_to: bool) -> tuple[list[str], int] | None:
    """Every member the announcement names ("X and Y", "X, Y og Z") and where the last name ends."""
    first = _target(rest, members, after_to=after_to)
    if first is None:
        return None
    named, end = [first[0]], first[1]
    while (joined := AND_ALSO.match(rest[end:])) is not None and joined.end():
        further = _name_at(rest, end + joined.end(), members)
        if further is None:
            break
        named.append(further[0])
        end = further[1]
    return named, end


def find_announcements(text: str, members: Sequence[tuple[str, re.Pattern]]) -> list[Announcement]:
    """Every member `text` announces handing work to, in order (see the module docstring).

    A member named by several sentences is listed once per sentence; "" stands for a generic
    teammate or a bare "delegate".
    """
    found: list[Announcement] = []
    for original in SENTENCE.split(text or ""):
        sentence = _normal(original).strip()
        if not sentence or sentence.endswith("?") or OFFER.search(sentence):
            continue
        for match in ANNOUNCE.finditer(sentence):
            if NEGATED_BEFORE.search(sentence[: match.start()]) or NEGATED_AFTER.match(sentence[match.end():]):
                continue
            groups = {k for k, v in match.groupdict().items() if v}
            rest = sentence[match.end():]
            named = None
            if groups & {"en_hand", "da_hand", "inv_hand", "bare_hand", "en_del", "da_del", "bare_del"}:
                named = _targets(rest, members, after_to=True)  # "... (videre) to/til X", or "send X ..."
            if named is None and not groups & {"en_del", "da_del", "bare_del"}:
                named = _targets(rest, members, after_to=False)
            if named is None and groups & {"en_del", "da_del", "bare_del"}:
                named = ([""], 0)  # "I'll delegate this" needs no object
            if named is None or NEGATED_AFTER_OBJECT.match(rest[named[1]:]):
                continue
            found += [Announcement(member=member, sentence=original.strip()) for member in named[0]]
            break  # one announcement per sentence: its members are all listed
    return found


def find_announcement(text: str, members: Sequence[tuple[str, re.Pattern]]) -> Announcement | None:
    """The first announcement in `text`, or None."""
    return next(iter(find_announcements(text, members)), None)
