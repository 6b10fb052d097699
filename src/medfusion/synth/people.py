"""Names, places and the shared pool of organizations and practitioners.

The pool depends only on the run's seed, so every bundle of a run names the same
providers and a server that imports the bundles one by one creates each provider once
(through the bundles' conditional creates).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = ["Place", "Practitioner", "Provider", "provider_pool", "random_uuid"]

GIVEN_MALE: Final = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Edward", "Ronald", "Luis", "Wei", "Omar", "Raj",
)  # fmt: skip
GIVEN_FEMALE: Final = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Nancy", "Lisa", "Betty", "Margaret", "Sandra", "Ashley", "Emily",
    "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Maria", "Mei", "Fatima", "Priya",
)  # fmt: skip
FAMILY: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Chen",
    "Patel", "Kim", "O'Brien", "Murphy", "Cohen", "Rossi", "Schmidt",
)  # fmt: skip
STREETS: Final = (
    "Main St", "Oak Ave", "Maple St", "Cedar Rd", "Elm St", "Washington St", "Park Ave",
    "Lake Rd", "Hill St", "Pine St", "Church St", "River Rd", "Highland Ave", "Union St",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Place:
    """A Massachusetts town and one of its ZIP codes."""

    city: str
    postal_code: str


PLACES: Final = (
    Place("Boston", "02118"), Place("Cambridge", "02139"), Place("Worcester", "01604"),
    Place("Springfield", "01109"), Place("Lowell", "01852"), Place("Brockton", "02301"),
    Place("Quincy", "02169"), Place("Lynn", "01902"), Place("New Bedford", "02740"),
    Place("Fall River", "02720"), Place("Newton", "02458"), Place("Somerville", "02143"),
    Place("Framingham", "01702"), Place("Haverhill", "01830"), Place("Waltham", "02453"),
    Place("Malden", "02148"), Place("Medford", "02155"), Place("Taunton", "02780"),
    Place("Chicopee", "01013"), Place("Weymouth", "02188"), Place("Revere", "02151"),
    Place("Peabody", "01960"), Place("Methuen", "01844"), Place("Barnstable", "02601"),
    Place("Pittsfield", "01201"), Place("Attleboro", "02703"), Place("Salem", "01970"),
)  # fmt: skip

ORGANIZATION_KINDS: Final = (
    "Hospital", "Medical Center", "Community Health Center", "Family Practice",
)  # fmt: skip
PRACTITIONERS_PER_ORGANIZATION: Final = 4
ORGANIZATIONS: Final = 12


def random_uuid(rng: random.Random) -> str:
    """Return a version-4 UUID drawn from ``rng`` (so it repeats with the seed).

    Parameters
    ----------
    rng
        The seeded generator.

    Returns
    -------
    str
        The UUID in canonical text form.
    """
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A practitioner of the shared pool."""

    uuid: str
    npi: str
    given: str
    family: str
    gender: str


@dataclass(frozen=True, slots=True)
class Provider:
    """An organization of the shared pool with its practitioners."""

    uuid: str
    identifier: str
    name: str
    place: Place
    street: str
    practitioners: tuple[Practitioner, ...]


@lru_cache(maxsize=8)
def provider_pool(seed: int) -> tuple[Provider, ...]:
    """Return the organizations (with practitioners) shared by every patient of a run.

    Parameters
    ----------
    seed
        The run's seed.

    Returns
    -------
    tuple of Provider
        The pool; it depends on ``seed`` only.
    """
    rng = random.Random(f"medfusion-synth-providers:{seed}")
    providers: list[Provider] = []
    npis: set[str] = set()
    for index in range(ORGANIZATIONS):
        place = PLACES[index % len(PLACES)]
        kind = ORGANIZATION_KINDS[index % len(ORGANIZATION_KINDS)]
        staff: list[Practitioner] = []
        while len(staff) < PRACTITIONERS_PER_ORGANIZATION:
            # Synthea's practitioners carry NPIs of the reserved 999xxxxxxx form.
            npi = f"999{rng.randrange(10_000_000):07d}"
            if npi in npis:
                continue
            npis.add(npi)
            gender = rng.choice(("male", "female"))
            given = rng.choice(GIVEN_MALE if gender == "male" else GIVEN_FEMALE)
            staff.append(Practitioner(random_uuid(rng), npi, given, rng.choice(FAMILY), gender))
        providers.append(
            Provider(
                uuid=random_uuid(rng),
                identifier=random_uuid(rng),
                name=f"{place.city.upper()} {kind.upper()}",
                place=place,
                street=f"{rng.randrange(1, 999)} {rng.choice(STREETS)}",
                practitioners=tuple(staff),
            )
        )
    return tuple(providers)
