"""The clinical simulation behind each synthetic patient.

One patient is simulated from its own generator, seeded from ``(seed, index)``, so any
patient can be regenerated alone and in any order (what lets :mod:`.writer` split the
work across processes and still write the same bytes).

The model, in brief:

* chronic conditions start at an age drawn from a logistic cumulative-incidence curve
  whose intercept moves with risk factors (BMI, smoking, other conditions), so
  prevalence rises with age by construction;
* yearly wellness visits record vitals and labs whose means move with conditions,
  duration of disease and medications (diabetes raises HbA1c, metformin lowers it, ...);
* between visits, hospital admissions and death follow annual hazards from a log-linear
  model of age, conditions, blood pressure, HbA1c, eGFR, BMI and smoking; that is the
  signal a model trained on the output can learn.

All times are days relative to :data:`REFERENCE` (2026-01-01), never today's date.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from medfusion.synth.people import FAMILY, GIVEN_FEMALE, GIVEN_MALE, PLACES, STREETS, Place
from medfusion.synth.people import random_uuid as _uuid

__all__ = ["REFERENCE", "History", "Visit", "simulate"]

REFERENCE: Final = datetime(2026, 1, 1, tzinfo=UTC)
YEAR: Final = 365.25

# Order matters: later conditions use earlier ones as risk factors.
_CONDITION_ORDER: Final = ("hypertension", "diabetes", "copd", "ckd", "heart_failure")
_ADMISSION_WEIGHTS: Final = {
    "heart_failure": 3.0, "copd": 2.0, "ckd": 1.5, "diabetes": 1.0, "hypertension": 0.7,
}  # fmt: skip


@dataclass(slots=True)
class Visit:
    """One encounter: a yearly wellness visit or a hospital admission.

    Attributes
    ----------
    start, end
        Period of the encounter.
    inpatient
        ``True`` for an admission (class IMP), ``False`` for a wellness visit (AMB).
    practitioner
        Index of the attending practitioner in the patient's organization.
    reason
        For admissions, the condition key (or ``"none"``) that caused it.
    values
        Vitals and labs measured at a wellness visit, keyed by measure name.
    diagnoses
        Conditions first recorded at this visit.
    prescriptions
        Medications started at this visit.
    """

    start: datetime
    end: datetime
    inpatient: bool
    practitioner: int
    reason: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    diagnoses: list[str] = field(default_factory=list)
    prescriptions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class History:
    """Everything simulated about one patient; :mod:`.resources` turns it into FHIR."""

    uuid: str
    mrn: str
    gender: str
    given: str
    family: str
    birth: datetime
    place: Place
    street: str
    phone: str
    organization: int
    practitioner: int
    smoking: str
    onsets: dict[str, datetime]
    visits: list[Visit]
    death: datetime | None


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _onset_age(rng: random.Random, intercept: float, slope: float, risk: float) -> float:
    # Invert P(onset <= age) = sigmoid(intercept + slope * (age - 50) + risk) at a uniform
    # draw: the patient's onset is the age where the population curve crosses it.
    u = min(max(rng.random(), 1e-9), 1.0 - 1e-9)
    return 50.0 + (_logit(u) - intercept - risk) / slope


def _onsets(rng: random.Random, birth: float, bmi: float, smoking: str) -> dict[str, float]:
    current = smoking == "current"
    former = smoking == "former"
    ages: dict[str, float] = {}
    horizon = -birth / YEAR  # age at the reference date

    def has(name: str) -> float:
        return 1.0 if ages.get(name, math.inf) <= horizon else 0.0

    for name in _CONDITION_ORDER:
        if name == "hypertension":
            age = _onset_age(rng, -0.9, 0.07, 0.09 * (bmi - 27) + 0.3 * current)
        elif name == "diabetes":
            age = _onset_age(rng, -2.0, 0.05, 0.13 * (bmi - 27))
        elif name == "copd":
            age = _onset_age(rng, -4.2, 0.06, 2.3 * current + 1.4 * former)
        elif name == "ckd":
            age = _onset_age(rng, -3.8, 0.08, 0.9 * has("hypertension") + 0.9 * has("diabetes"))
        else:
            risk = (
                1.0 * has("hypertension") + 0.7 * has("diabetes") + 0.8 * has("ckd")
                + 0.5 * current + 0.04 * (bmi - 27)
            )  # fmt: skip
            age = _onset_age(rng, -5.3, 0.08, risk)
        ages[name] = max(age, 18.0 + rng.random() * 5.0)
    # Keep only onsets before the reference date, as days relative to it.
    return {k: birth + a * YEAR for k, a in ages.items() if a <= horizon}


def _at(day: float) -> datetime:
    return REFERENCE + timedelta(days=day)


def _clinic_time(day: float, rng: random.Random) -> datetime:
    # Round to the day, then open between 08:00 and 17:00 on a quarter hour.
    return REFERENCE + timedelta(days=math.floor(day), minutes=480 + 15 * rng.randrange(36))


@dataclass(slots=True)
class _State:
    """Per-patient constants of the measurement model."""

    male: bool
    height: float
    bmi: float
    egfr_offset: float
    smoking: str
    meds: set[str] = field(default_factory=set)


def _measure(
    rng: random.Random, s: _State, age: float, onset: dict[str, float], day: float
) -> dict[str, float]:
    gauss = rng.gauss
    years = {k: (day - d) / YEAR for k, d in onset.items() if d <= day}
    htn = "hypertension" in years
    dm = years.get("diabetes", -1.0)
    ckd = years.get("ckd", -1.0)
    hf = "heart_failure" in years
    current = s.smoking == "current"
    meds = s.meds

    bmi = min(max(s.bmi + 0.04 * (age - 50) + gauss(0, 0.6), 15.0), 60.0)
    sbp = (
        112 + 0.45 * (age - 40) + 0.7 * (bmi - 27) + 16 * htn + 3 * current + 4 * (ckd >= 0)
        - 13 * ("lisinopril" in meds) + gauss(0, 9)
    )  # fmt: skip
    sbp = min(max(sbp, 85.0), 220.0)
    dbp = 72 + 0.1 * (age - 40) + 0.35 * (bmi - 27) + 8 * htn - 6 * ("lisinopril" in meds)
    dbp = min(max(dbp + gauss(0, 6), 45.0), sbp - 20)
    hr = min(max(70 + 6 * current + 8 * hf + 0.3 * (bmi - 27) + gauss(0, 8), 40.0), 150.0)
    hba1c = 5.3 + 0.025 * (bmi - 27) + 0.004 * (age - 50) + gauss(0, 0.25)
    if dm >= 0:
        hba1c += 1.6 + 0.1 * dm
    hba1c -= 0.9 * ("metformin" in meds) + 1.2 * ("insulin" in meds)
    hba1c = min(max(hba1c, 4.2), 14.0)
    glucose = max(28.7 * hba1c - 46.7 + gauss(0, 12), 55.0)
    chol = (
        185 + 0.6 * (age - 40) + 1.0 * (bmi - 27) + 15 * (dm >= 0)
        - 55 * ("atorvastatin" in meds) + gauss(0, 28)
    )  # fmt: skip
    egfr = 115 - 0.85 * (age - 20) + s.egfr_offset + gauss(0, 5)
    if ckd >= 0:
        # CKD costs a step at onset and keeps eroding function year by year.
        egfr -= 22 + 2.5 * ckd
    if dm >= 0:
        egfr -= 0.8 * dm
    egfr = min(max(egfr - 0.1 * max(sbp - 140, 0.0), 5.0), 130.0)
    creatinine = (0.95 if s.male else 0.75) * (95.0 / egfr) ** 1.05 * math.exp(gauss(0, 0.04))
    return {
        "sbp": sbp, "dbp": dbp, "hr": hr, "bmi": bmi, "weight": bmi * s.height**2,
        "hba1c": hba1c, "glucose": glucose, "cholesterol": max(chol, 100.0),
        "creatinine": creatinine, "egfr": egfr,
    }  # fmt: skip


def _hazards(s: _State, age: float, active: set[str], v: dict[str, float]) -> tuple[float, float]:
    """Return annual (admission, death) rates from a log-linear model of risk factors."""
    current = s.smoking == "current"
    former = s.smoking == "former"
    hf, ckd = "heart_failure" in active, "ckd" in active
    copd, dm = "copd" in active, "diabetes" in active
    shared = (
        0.015 * (v["sbp"] - 130) + 0.02 * max(60 - v["egfr"], 0.0)
        + 0.04 * max(v["bmi"] - 30, 0.0) + 0.05 * max(20 - v["bmi"], 0.0)
    )  # fmt: skip
    admit = (
        -3.6 + 0.03 * (age - 60) + 1.0 * hf + 0.6 * ckd + 0.8 * copd + 0.4 * dm
        + 0.25 * max(v["hba1c"] - 7, 0.0) + 0.4 * current + shared
    )  # fmt: skip
    death = (
        -5.6 + 0.085 * (age - 60) + 1.0 * hf + 0.7 * ckd + 0.6 * copd + 0.3 * dm
        + 0.2 * (v["hba1c"] - 6) + 0.7 * current + 0.3 * former + shared
    )  # fmt: skip
    return math.exp(admit), math.exp(death)


def _prescribe(s: _State, diagnosed: set[str], v: dict[str, float], age: float) -> list[str]:
    started: list[str] = []
    wanted = (
        ("metformin", "diabetes" in diagnosed),
        ("insulin", "metformin" in s.meds and v["hba1c"] > 8.5),
        ("lisinopril", "hypertension" in diagnosed),
        ("atorvastatin", v["cholesterol"] > 240 or ("diabetes" in diagnosed and age > 40)),
    )
    for med, indicated in wanted:
        if indicated and med not in s.meds:
            started.append(med)
    return started


def simulate(index: int, seed: int, organizations: int, practitioners: int) -> History:
    """Simulate one patient's life over the observation window.

    Parameters
    ----------
    index
        Position of the patient in the cohort.
    seed
        The run's seed; with ``index`` it fully determines the patient.
    organizations, practitioners
        Size of the shared provider pool and of each organization's staff.

    Returns
    -------
    History
        Demographics, condition onsets, encounters with their measurements, and death.
    """
    # A string seed is hashed with SHA-512, so it is stable across runs and platforms.
    rng = random.Random(f"medfusion-synth:{seed}:{index}")
    male = rng.random() < 0.49
    age_now = 18.0 + 77.0 * rng.betavariate(1.6, 1.8)
    birth = -math.floor(age_now * YEAR)
    u = rng.random()
    smoking = "current" if u < 0.15 else "former" if u < 0.15 + 0.12 + 0.004 * age_now else "never"
    bmi = min(max(rng.gauss(28.0, 5.5), 17.0), 55.0)
    state = _State(
        male=male,
        height=rng.gauss(1.76, 0.07) if male else rng.gauss(1.63, 0.065),
        bmi=bmi,
        egfr_offset=rng.gauss(0, 8),
        smoking=smoking,
    )
    onset = _onsets(rng, birth, bmi, smoking)
    organization = rng.randrange(organizations)
    practitioner = rng.randrange(practitioners)
    history = History(
        uuid=_uuid(rng),
        mrn=_uuid(rng),
        gender="male" if male else "female",
        given=rng.choice(GIVEN_MALE if male else GIVEN_FEMALE),
        family=rng.choice(FAMILY),
        birth=_at(birth),
        place=rng.choice(PLACES),
        street=f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
        phone=f"555-{rng.randrange(100, 1000)}-{rng.randrange(10000):04d}",
        organization=organization,
        practitioner=practitioner,
        smoking=smoking,
        onsets={k: _at(d) for k, d in onset.items()},
        visits=[],
        death=None,
    )

    day = max(birth + 18 * YEAR, -rng.uniform(6.0, 10.0) * YEAR)
    diagnosed: set[str] = set()
    while day < -1:
        age = (day - birth) / YEAR
        start = _clinic_time(day, rng)
        visit = Visit(start, start + timedelta(minutes=30), False, practitioner)
        visit.values = _measure(rng, state, age, onset, day)
        visit.diagnoses = [k for k in _CONDITION_ORDER if k in onset and onset[k] <= day
                           and k not in diagnosed]  # fmt: skip
        diagnosed.update(visit.diagnoses)
        visit.prescriptions = _prescribe(state, diagnosed, visit.values, age)
        state.meds.update(visit.prescriptions)
        history.visits.append(visit)

        # Outcomes over the interval to the next visit, from the state seen at this one.
        following = min(day + max(rng.gauss(YEAR, 30.0), 200.0), 0.0)
        span = (following - day) / YEAR
        active = {k for k, d in onset.items() if d <= day}
        admit_rate, death_rate = _hazards(state, age, active, visit.values)
        admitted_at: float | None = None
        if rng.random() < 1.0 - math.exp(-admit_rate * span):
            admitted_at = rng.uniform(day + 1, following)
            weights = [(k, w) for k, w in _ADMISSION_WEIGHTS.items() if k in active]
            weights.append(("none", 1.0))
            reason = rng.choices([k for k, _ in weights], [w for _, w in weights])[0]
            start = _at(math.floor(admitted_at) + rng.random())
            stay = timedelta(days=rng.randint(2, 8), hours=rng.randrange(24))
            history.visits.append(
                Visit(start=start, end=start + stay, inpatient=True,
                      practitioner=rng.randrange(practitioners), reason=reason)
            )  # fmt: skip
            death_rate *= 2.0  # an admission marks an acute decline
        if rng.random() < 1.0 - math.exp(-death_rate * span):
            low = admitted_at + 1 if admitted_at is not None else day + 1
            died = _at(rng.uniform(min(low, following), following))
            if history.visits[-1].end > died:
                history.visits[-1].end = died  # died in hospital
            history.death = died
            break
        day = following
    return history
