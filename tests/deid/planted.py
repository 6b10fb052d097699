"""A planted-PHI free-text set: identifiers of every Safe Harbor kind in clinical sentences.

Deterministic per seed. Each sentence records the exact spans planted, so recall is the
share of planted spans fully covered by the detector's findings (any label). Names come in
three groups, reported apart because the detector treats them differently:

- ``NAME`` (record): people of the record itself (patient, relatives, clinicians), which
  the export's gazetteer holds;
- ``NAME`` (cue): people absent from the record, introduced by a title or a relationship
  cue ("Dr. Okafor", "daughter Priya");
- ``NAME`` (bare): people absent from the record with no cue at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Record people: what the export's own Patients / RelatedPersons / Practitioners hold.
RECORD_GIVEN = ["Alberto639", "Freda", "Clemente", "Benedict", "Erick", "Marisol", "Yesenia", "Thaddeus"]
RECORD_FAMILY = [
    "Atencio217",
    "O'Connell",
    "Kreiger",
    "Ortiz",
    "Auer",
    "Balistreri",
    "Turcotte",
    "Vandervort",
]
RECORD_CITIES = ["Fall River", "Chicopee", "Marlborough", "Wakefield"]
RECORD_STREETS = ["1003 Kilback Esplanade", "88 Windler Crossroad Suite 4", "347 Nader Rapid"]
# People absent from the record, diverse on purpose (few are in the common-name list).
OTHER_GIVEN = [
    "Aisha",
    "Mateo",
    "Priya",
    "Oluwaseun",
    "Kenji",
    "Svetlana",
    "Thandiwe",
    "Rafael",
    "Ingrid",
    "Dmitri",
    "Mary",
    "James",
    "Linda",
    "Carlos",
    "Mei",
    "Tomasz",
]
OTHER_FAMILY = [
    "Okafor",
    "Nakamura",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Castellanos",
    "Brennan",
    "Kowalczyk",
    "Adeyemi",
    "Petrov",
    "Shapiro",
    "Nguyen",
]
CLEAN = [
    "Blood pressure 128/82 mmHg, heart rate 76, afebrile.",
    "Hemoglobin A1c 7.2 % on metformin 500 mg twice daily.",
    "Continue lisinopril 10 mg; recheck potassium in two weeks.",
    "No acute distress. Lungs clear to auscultation bilaterally.",
    "Plan: physical therapy three times weekly for 6 weeks.",
    "Glomerular filtration rate/1.73 sq M.predicted within range.",
    "Smoking status: former smoker, quit in 2015.",
    "Patient reports improved sleep and appetite.",
]


@dataclass(frozen=True)
class Planted:
    """One sentence and the identifier spans planted in it."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


def _fill(template: str, values: dict[str, tuple[str, str]]) -> Planted:
    # template holds {slot} markers; values maps slot -> (text, kind)
    text, spans, position = "", [], 0
    while True:
        start = template.find("{", position)
        if start < 0:
            text += template[position:]
            break
        end = template.index("}", start)
        text += template[position:start]
        value, kind = values[template[start + 1 : end]]
        spans.append((len(text), len(text) + len(value), kind))
        text += value
        position = end + 1
    return Planted(text, tuple(spans))


def _date(rng: random.Random) -> str:
    y, m, d = rng.randint(1950, 2025), rng.randint(1, 12), rng.randint(1, 28)
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    forms = [
        f"{m:02d}/{d:02d}/{y}",
        f"{m}/{d}/{y % 100:02d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{months[m - 1]} {d}, {y}",
        f"{d} {months[m - 1][:3]} {y}",
        f"{months[m - 1][:3]}. {d}, {y}",
        f"{d}.{m}.{y}",
    ]
    return rng.choice(forms)


def _phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}"])


def build(seed: int = 7, per_template: int = 20) -> list[Planted]:
    """The planted set: every template filled ``per_template`` times."""
    rng = random.Random(seed)
    record = [(g, f) for g in RECORD_GIVEN for f in RECORD_FAMILY]
    other = [(g, f) for g in OTHER_GIVEN for f in OTHER_FAMILY]
    templates: list[tuple[str, dict[str, object]]] = [
        ("{n} presented with chest pain.", {"n": ("record_full", "NAME")}),
        ("Discussed results with {n} and her husband.", {"n": ("record_given", "NAME")}),
        ("Mr. {n} tolerated the procedure well.", {"n": ("record_family", "NAME")}),
        ("Seen by Dr. {n} in clinic today.", {"n": ("other_family", "NAME_CUE")}),
        ("Spoke with daughter {n} by phone.", {"n": ("other_given", "NAME_CUE")}),
        ("Accompanied by {n}, his neighbour.", {"n": ("other_full", "NAME_CUE")}),
        ("Mrs. {n} will call back.", {"n": ("other_full", "NAME_CUE")}),
        ("{n} reports no side effects.", {"n": ("other_full", "NAME_BARE")}),
        ("DOB {d}; last visit {d2}.", {"d": ("date", "DATE"), "d2": ("date", "DATE")}),
        ("Admitted on {d} for pneumonia.", {"d": ("date", "DATE")}),
        ("Call home {p} or cell {p2}.", {"p": ("phone", "PHONE"), "p2": ("phone", "PHONE")}),
        ("Fax records to {p}.", {"p": ("phone", "PHONE")}),
        ("MRN: {m} verified at check-in.", {"m": ("mrn", "MRN")}),
        ("Chart lists medical record number {m}.", {"m": ("mrn", "MRN")}),
        ("SSN {s} on file.", {"s": ("ssn", "SSN")}),
        ("Insurance member id {i}, account {a}.", {"i": ("member", "ID"), "a": ("account", "ID")}),
        ("Email {e} for portal access.", {"e": ("email", "EMAIL")}),
        ("Results posted at {u}.", {"u": ("url", "URL")}),
        ("Device reported from {ip} overnight.", {"ip": ("ip", "IP")}),
        ("Lives at {a}, {c}.", {"a": ("street", "ADDRESS"), "c": ("city", "ADDRESS")}),
        ("Moved to {a} last spring.", {"a": ("other_street", "ADDRESS")}),
        ("Mailing address MA {z}.", {"z": ("zip", "ADDRESS")}),
        ("Pacemaker serial number {x} checked.", {"x": ("serial", "ID")}),
    ]
    out: list[Planted] = []
    for template, slots in templates:
        for _ in range(per_template):
            values: dict[str, tuple[str, str]] = {}
            for slot, (source, kind) in slots.items():  # type: ignore[misc]
                values[slot] = (_value(source, rng, record, other), kind)
            out.append(_fill(template, values))
    return out


def _value(
    source: str, rng: random.Random, record: list[tuple[str, str]], other: list[tuple[str, str]]
) -> str:
    g, f = rng.choice(record)
    og, of = rng.choice(other)
    streets = ["Oak", "Maple", "Elm", "Cedar", "Washington", "Lake", "Hill", "Pine"]
    kinds = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Blvd", "Court"]
    values = {
        "record_full": f"{g} {f}",
        "record_given": g,
        "record_family": f,
        "other_full": f"{og} {of}",
        "other_given": og,
        "other_family": of,
        "date": _date(rng),
        "phone": _phone(rng),
        "mrn": rng.choice([f"{rng.randint(10**6, 10**9)}", f"A{rng.randint(10**6, 10**7)}"]),
        "ssn": f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "member": f"XQ{rng.randint(10**7, 10**9)}",
        "account": f"{rng.randint(10**5, 10**8)}",
        "email": f"{og.lower()}.{of.lower()}{rng.randint(1, 99)}@"
        + rng.choice(["gmail.com", "mail.org", "uni.edu"]),
        "url": rng.choice(
            [
                f"https://portal.clinic{rng.randint(1, 99)}.org/p/{rng.randint(1000, 9999)}",
                f"www.{of.lower()}family.com",
                f"http://{rng.randint(10, 250)}.{rng.randint(0, 250)}"
                f".{rng.randint(0, 250)}.{rng.randint(1, 250)}/chart",
            ]
        ),
        "ip": rng.choice(
            [
                f"{rng.randint(10, 250)}.{rng.randint(0, 250)}.{rng.randint(0, 250)}.{rng.randint(1, 250)}",
                f"2001:db8:{rng.randint(0, 65535):x}::{rng.randint(1, 65535):x}",
            ]
        ),
        "street": rng.choice(RECORD_STREETS),
        "city": rng.choice(RECORD_CITIES),
        "other_street": f"{rng.randint(1, 9999)} {rng.choice(streets)} {rng.choice(kinds)}",
        "zip": f"{rng.randint(1000, 99999):05d}",
        "serial": f"PM{rng.randint(10**5, 10**8)}X",
    }
    return values[source]


def record_names() -> list[str]:
    """The record's people, as the export's gazetteer would hold them."""
    return RECORD_GIVEN + RECORD_FAMILY


def record_places() -> list[str]:
    """The record's street lines and cities."""
    return RECORD_STREETS + RECORD_CITIES
