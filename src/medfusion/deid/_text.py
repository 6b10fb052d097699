"""Free-text PHI detection: Presidio pattern recognisers plus names known from the records.

Presidio's analyzer runs here with its no-op NLP engine, so no spaCy model is loaded (none
can be downloaded) and there is no statistical name recogniser. Names are found instead by

- a gazetteer built from the export itself: every given and family name, street line and
  city of the Patients, RelatedPersons, Practitioners and Persons being exported;
- titles and relationship cues (``Dr. Osei``, ``daughter Maria``);
- a short list of common given names followed by a capitalised word.

Findings are ``(start, end, kind)`` spans; :meth:`TextDetector.scrub` replaces each with
``[KIND]``. Pattern findings depend on the text only and are cached per string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

__all__ = ["Finding", "TextDetector"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected identifier in a text."""

    start: int
    end: int
    kind: str


# Presidio entity -> our kind.
_ENTITY_KIND: Final = {
    "US_SSN": "SSN",
    "PHONE_NUMBER": "PHONE",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "DATE_TIME": "DATE",
    "EMAIL_ADDRESS": "EMAIL",
    "MRN": "MRN",
    "SSN_ANY": "SSN",
    "MONTH_DATE": "DATE",
    "NUMERIC_DATE": "DATE",
    "STREET": "ADDRESS",
    "ZIP": "ADDRESS",
    "LONG_ID": "ID",
    "URL_ANY": "URL",
    "NANP_PHONE": "PHONE",
}

_CUSTOM_PATTERNS: Final = (
    # SSNs without Presidio's validity filter (test and placeholder ranges are still SSNs here).
    ("SSN_ANY", r"\b\d{3}-\d{2}-\d{4}\b", 0.7),
    # North American numbers whatever the area code (the phonenumbers library rejects
    # unassigned ones, but a typo'd number is still a phone number).
    ("NANP_PHONE", r"(?<![\d-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\d-])", 0.7),
    # Presidio's URL recogniser misses hosts given as IP addresses.
    ("URL_ANY", r"\b(?:https?|ftp)://[^\s<>\"']*[^\s<>\"'.,;:)]", 0.9),
    ("EMAIL_ADDRESS", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", 0.9),
    ("MRN", r"(?i)\b(?:MRN|medical record(?: number| no\.?)?|record (?:number|no\.?)|chart (?:number|no\.?)"
     r"|acct|account(?: number| no\.?)?|member id|policy(?: number| no\.?)?|licen[cs]e(?: number| no\.?)?"
     r"|serial(?: number| no\.?)?|VIN|plate)\s*[:#]?\s*[A-Z0-9][A-Z0-9-]{3,}\b", 0.9),
    (
        "MONTH_DATE",
        r"(?i)\b(?:\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?)?(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|"
        r"june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
        r"(?:\s+\d{1,2}(?:st|nd|rd|th)?)?,?\s+\d{4}\b",
        0.8,
    ),
    ("NUMERIC_DATE", r"\b(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})"
     r"(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b", 0.8),
    ("STREET", r"\b\d{1,6}\s+(?:[A-Z][A-Za-z]*\.?\s+){1,4}"
     r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq)\b\.?"
     r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|#)\.?\s*\w+)?", 0.8),
    ("ZIP", r"\b[A-Z]{2},?\s+\d{5}(?:-\d{4})?\b", 0.8),
    # Any other unique number: five or more digits in one token (record, account, device numbers).
    ("LONG_ID", r"\b(?=(?:[A-Za-z-]*\d){5})[A-Za-z0-9][A-Za-z0-9-]{4,}\b", 0.5),
)  # fmt: skip

# A text with none of these cannot hold any pattern finding, so Presidio is skipped.
_PATTERN_HINT: Final = re.compile(r"[\d@]|www|http|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")

_TITLE: Final = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Sr|Nurse|Rev)\.?\s+((?:[A-Z][a-zA-Z'-]+)(?:\s+[A-Z][a-zA-Z'-]+)?)"
)
_CUE: Final = re.compile(
    r"(?i:\b(?:patient|pt|name|son|daughter|wife|husband|mother|father|brother|sister|spouse|partner|friend"
    r"|neighbo(?:u)?r|caregiver|guardian|grandson|granddaughter|aunt|uncle|niece|nephew|cousin|contact"
    r"|called|named|signed by|seen by|referred by|accompanied by)\b)[\s:,]+"
    r"(?!(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Sr|Nurse|Rev)\b)((?:[A-Z][a-zA-Z'-]+)(?:\s+[A-Z][a-zA-Z'-]+)?)"
)
_WORD: Final = re.compile(r"[A-Za-z][A-Za-z'-]*\d*")
# Words of street lines and places, numbers included ("1003 Kilback Esplanade").
_PLACE_WORD: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9']*")
_CAPITALISED_NEXT: Final = re.compile(r"\s+([A-Z][a-zA-Z'-]+)")

# Common US given names (a gazetteer standing in for a statistical name recogniser).
COMMON_GIVEN_NAMES: Final = frozenset(
    tuple(
        """james john robert michael william david richard joseph thomas charles christopher daniel matthew
    anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason
    jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel
    gregory alexander frank patrick raymond jack dennis jerry tyler aaron jose adam nathan henry douglas
    zachary peter kyle ethan walter noah jeremy christian keith roger terry gerald harold sean austin carl
    arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert willie alan juan wayne
    elijah randy roy vincent ralph eugene russell bobby mason philip louis mary patricia jennifer linda
    elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra ashley kimberly emily
    donna michelle carol amanda dorothy melissa deborah stephanie rebecca sharon laura cynthia kathleen
    amy angela shirley anna brenda pamela emma nicole helen samantha katherine christine debra rachel
    carolyn janet catherine maria heather diane ruth julie olivia joyce virginia victoria kelly lauren
    christina joan evelyn judith megan andrea cheryl hannah jacqueline martha gloria teresa ann sara
    madison frances kathryn janice jean abigail alice judy sophia grace denise amber doris marilyn danielle
    beverly isabella theresa diana natalie brittany charlotte marie kayla alexis lori""".split()  # noqa: SIM905
    )
)

_NAME_KIND: Final = "NAME"


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    # Imported lazily: Presidio pulls in spaCy, which a plain export without text never needs.
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        DateRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        UsSsnRecognizer(),
        PhoneRecognizer(),
        UrlRecognizer(),
        IpRecognizer(),
        DateRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    for entity, regex, score in _CUSTOM_PATTERNS:
        registry.add_recognizer(
            PatternRecognizer(supported_entity=entity, patterns=[Pattern(entity.lower(), regex, score)])
        )
    engine = AnalyzerEngine(
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
        registry=registry,
        supported_languages=["en"],
    )
    return engine


# Presidio's URL recogniser also matches code text such as "A1c/Hemoglobin.total": a URL
# must carry a scheme, "www." or a common top-level domain, and start at a word boundary.
_URL_SHAPE: Final = re.compile(
    r"(?i)^(?:[a-z][a-z0-9+.-]*://|www\.|[\w.-]+\.(?:com|org|net|edu|gov|mil|int|io|info|biz|us|uk|ca|de|fr"
    r"|health|me|co|ly|app|dev)(?:[/:?#]|$))"
)


@lru_cache(maxsize=65536)
def _pattern_findings(text: str) -> tuple[Finding, ...]:
    if not _PATTERN_HINT.search(text):
        return ()
    results = _analyzer().analyze(text=text, language="en", score_threshold=0.3)
    findings = []
    for result in results:
        kind = _ENTITY_KIND.get(result.entity_type)
        if kind is None:
            continue
        if kind == "URL":
            inside_word = result.start > 0 and (
                text[result.start - 1].isalnum() or text[result.start - 1] == "/"
            )
            if inside_word or not _URL_SHAPE.match(text[result.start : result.end]):
                continue
        findings.append(Finding(result.start, result.end, kind))
    return tuple(findings)


def _name_tokens(name: str) -> set[str]:
    tokens = set()
    for word in _WORD.findall(name):
        lowered = word.lower()
        if len(lowered.rstrip("0123456789")) >= 2:
            tokens.add(lowered)
            # Synthea appends digits to names ("Alberto639"); the bare name counts too.
            tokens.add(lowered.rstrip("0123456789"))
    return tokens


class TextDetector:
    """Find identifiers in free text.

    Parameters
    ----------
    names
        Person names from the records (given and family names, whole or in parts).
    places
        Street lines and city names from the records, matched as whole phrases.
    """

    def __init__(self, names: Iterable[str] = (), places: Iterable[str] = ()) -> None:
        self._names: set[str] = set()
        for name in names:
            self._names |= _name_tokens(name)
        self._places: set[tuple[str, ...]] = set()
        for place in places:
            words = tuple(word.lower() for word in _PLACE_WORD.findall(place))
            if words:
                self._places.add(words)
        self._longest_place = max((len(p) for p in self._places), default=0)

    def find(self, text: str) -> list[Finding]:
        """Every identifier found in ``text``, overlapping spans merged, in order."""
        findings = list(_pattern_findings(text))
        findings += self._record_names(text)
        for pattern in (_TITLE, _CUE):
            findings += [Finding(m.start(1), m.end(1), _NAME_KIND) for m in pattern.finditer(text)]
        return _merge(findings, text)

    def scrub(self, text: str) -> str:
        """``text`` with every finding replaced by ``[KIND]``."""
        findings = self.find(text)
        if not findings:
            return text
        parts: list[str] = []
        position = 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(f"[{finding.kind}]")
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

    def _record_names(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for word in _WORD.finditer(text):
            token = word.group().lower()
            if token in self._names:
                found.append(Finding(word.start(), word.end(), _NAME_KIND))
            elif token in COMMON_GIVEN_NAMES and word.group()[0].isupper():
                following = _CAPITALISED_NEXT.match(text, word.end())
                end = following.end() if following else word.end()
                found.append(Finding(word.start(), end, _NAME_KIND))
        if self._places:
            words = list(_PLACE_WORD.finditer(text))
            lowered = [w.group().lower() for w in words]
            for i, word in enumerate(words):
                for length in range(min(self._longest_place, len(words) - i), 0, -1):
                    if tuple(lowered[i : i + length]) in self._places:
                        found.append(Finding(word.start(), words[i + length - 1].end(), "ADDRESS"))
                        break
        return found


def _merge(findings: list[Finding], text: str) -> list[Finding]:
    # Overlapping spans become one; so do spans of one kind with only blanks between
    # ("[NAME] [NAME]" reads as one name and leaves no gap).
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if merged:
            last = merged[-1]
            touching = finding.kind == last.kind and not text[last.end : finding.start].strip()
            if finding.start < last.end or (touching and finding.start >= last.end):
                if finding.end > last.end:
                    merged[-1] = Finding(last.start, finding.end, last.kind)
                continue
        merged.append(finding)
    return merged
