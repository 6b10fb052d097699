"""The free-text detector: recall on the planted-PHI set, and clean text left alone."""

from __future__ import annotations

from collections import Counter

import pytest

from medfusion.deid import TextDetector
from tests.deid import planted


@pytest.fixture(scope="module")
def detector() -> TextDetector:
    return TextDetector(names=planted.record_names(), places=planted.record_places())


def recall_by_kind(detector: TextDetector, sentences: list[planted.Planted]) -> dict[str, tuple[int, int]]:
    """Planted spans found / planted, per kind (a span counts when findings cover it fully)."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for sentence in sentences:
        covered = [(f.start, f.end) for f in detector.find(sentence.text)]
        for start, end, kind in sentence.spans:
            total[kind] += 1
            if all(any(s <= i < e for s, e in covered) for i in range(start, end)):
                found[kind] += 1
    return {kind: (found[kind], total[kind]) for kind in total}


def test_recall_on_planted_set_is_at_least_095(detector: TextDetector) -> None:
    by_kind = recall_by_kind(detector, planted.build())
    found = sum(f for f, _ in by_kind.values())
    total = sum(t for _, t in by_kind.values())
    assert total >= 500
    assert found / total >= 0.95, by_kind
    # every structured kind is found essentially always
    for kind in ("DATE", "PHONE", "MRN", "SSN", "EMAIL", "URL", "IP", "ADDRESS", "ID", "NAME", "NAME_CUE"):
        f, t = by_kind[kind]
        assert f / t >= 0.9, (kind, f, t)


def test_scrub_replaces_every_planted_value(detector: TextDetector) -> None:
    for sentence in planted.build(seed=11, per_template=2):
        scrubbed = detector.scrub(sentence.text)
        for start, end, kind in sentence.spans:
            if kind != "NAME_BARE":
                assert sentence.text[start:end] not in scrubbed, (sentence.text, scrubbed)


def test_clean_clinical_text_is_left_alone(detector: TextDetector) -> None:
    for text in planted.CLEAN:
        assert detector.scrub(text) == text


def test_synthea_style_names_match_with_and_without_digits() -> None:
    detector = TextDetector(names=["Alberto639 Atencio217"])
    assert detector.scrub("alberto and ATENCIO217 came in") == "[NAME] and [NAME] came in"


def test_url_recogniser_false_positives_on_codes_are_dropped() -> None:
    detector = TextDetector()
    assert (
        detector.scrub("Hemoglobin A1c/Hemoglobin.total in Blood")
        == "Hemoglobin A1c/Hemoglobin.total in Blood"
    )
    assert detector.scrub("see https://portal.example.org/x") == "see [URL]"
