"""Image checks: each flags a crafted bad image set and passes a good one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medfusion.quality import ImageItem, QualityConfig, check_images, load_config

Images = dict[str, tuple[np.ndarray, np.ndarray]]


def _good(seed: int = 0) -> Images:
    """Three splits of noisy 28x28 uint8 images, two balanced classes, all distinct."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 40), ("val", 10), ("test", 10)):
        images = rng.integers(40, 200, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 2).astype(np.uint8)[:, None]
        splits[split] = (images, labels)
    return splits


def _items(splits: Images) -> list[ImageItem]:
    return [
        ImageItem(f"{split}/{i}", image, label=label, split=split)
        for split, (images, labels) in splits.items()
        for i, (image, label) in enumerate(zip(images, labels, strict=True))
    ]


def _failed(items: list[ImageItem], config: QualityConfig | None = None) -> dict[str, set[object]]:
    report = check_images(items, config, labelled=True)
    found: dict[str, set[object]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.row)
    assert {c.name for c in report.checks if not c.passed} == set(found)
    return found


def test_a_clean_image_set_passes_every_check() -> None:
    report = check_images(_items(_good()), labelled=True)
    assert report.passed and report.findings == ()
    assert {c.name for c in report.checks} >= {
        "image_format", "image_missing", "image_constant", "image_saturation", "image_intensity",
        "label_missing", "label_set", "label_balance", "duplicate_items", "split_leakage",
    }  # fmt: skip
    assert all(c.checked > 0 for c in report.checks)
    assert report.summary["labels"] == {
        "train": {"0": 20, "1": 20},
        "val": {"0": 5, "1": 5},
        "test": {"0": 5, "1": 5},
    }


def _replace(items: list[ImageItem], row: str, **changes: object) -> list[ImageItem]:
    out = []
    for item in items:
        if item.row == row:
            fields = {**item.__dict__, **changes}
            item = ImageItem(**fields)  # type: ignore[arg-type]
        out.append(item)
    return out


def _pixels(
    row: str, make: Callable[[np.ndarray], np.ndarray]
) -> Callable[[list[ImageItem]], list[ImageItem]]:
    def plant(items: list[ImageItem]) -> list[ImageItem]:
        original = next(i for i in items if i.row == row).pixels
        assert original is not None
        return _replace(items, row, pixels=make(original.copy()))

    return plant


def _black_half(image: np.ndarray) -> np.ndarray:
    image[:20] = 0
    return image


def _saturated(image: np.ndarray) -> np.ndarray:
    image[:, :20] = 255
    return image


def _copy_of(source: str, target: str) -> Callable[[list[ImageItem]], list[ImageItem]]:
    def plant(items: list[ImageItem]) -> list[ImageItem]:
        pixels = next(i for i in items if i.row == source).pixels
        return _replace(items, target, pixels=pixels)

    return plant


CASES: list[tuple[str, Callable[[list[ImageItem]], list[ImageItem]], str]] = [
    (
        "unreadable",
        lambda items: _replace(items, "train/3", pixels=None, problem="not a PNG"),
        "image_format",
    ),
    ("3-D volume", _pixels("train/4", lambda a: np.stack([a] * 9)), "image_format"),
    ("other size", _pixels("val/2", lambda a: a[:20, :20]), "image_format"),
    ("other dtype", _pixels("val/3", lambda a: a.astype(np.float32)), "image_format"),
    ("RGB among grey", _pixels("test/1", lambda a: np.stack([a] * 3, axis=-1)), "image_format"),
    ("absent image", lambda items: _replace(items, "train/5", pixels=None, missing=True), "image_missing"),
    ("no pixels", _pixels("train/6", lambda a: a[:0]), "image_missing"),
    ("all black", _pixels("train/7", lambda a: np.zeros_like(a)), "image_constant"),
    ("all white", _pixels("train/8", lambda a: np.full_like(a, 255)), "image_constant"),
    ("mostly black", _pixels("train/9", _black_half), "image_saturation"),
    ("saturated", _pixels("train/10", _saturated), "image_saturation"),
    ("dark outlier", _pixels("train/11", lambda a: (a // 20).astype(np.uint8) + 1), "image_intensity"),
    ("no label", lambda items: _replace(items, "train/12", label=None), "label_missing"),
    ("not a class index", lambda items: _replace(items, "train/13", label=0.5), "label_set"),
    ("negative class index", lambda items: _replace(items, "train/14", label=-1), "label_set"),
    ("duplicate in a split", _copy_of("train/0", "train/15"), "duplicate_items"),
    ("train image in test", _copy_of("train/1", "test/9"), "split_leakage"),
]


@pytest.mark.parametrize(("what", "plant", "check"), CASES, ids=[c[0] for c in CASES])
def test_each_check_flags_a_planted_defect(
    what: str, plant: Callable[[list[ImageItem]], list[ImageItem]], check: str
) -> None:
    clean = _items(_good())
    planted = plant(clean)
    changed = {a.row for a, b in zip(clean, planted, strict=True) if a is not b}
    found = _failed(planted)
    assert found.get(check) == changed, (what, found)


def test_label_set_from_the_config_and_classes_unseen_in_train(tmp_path: Path) -> None:
    items = _items(_good())
    config = tmp_path / "q.toml"
    config.write_text("labels = [0]\n")
    assert len(_failed(items, load_config(config))["label_set"]) == 30
    # A class that only the test split has is a conformance error too.
    planted = _replace(items, "test/0", label=np.uint8(2))
    assert _failed(planted, load_config(None))["label_set"] == {"test/0"}


def test_label_balance_reports_a_rare_class_and_its_threshold_is_overridable(tmp_path: Path) -> None:
    splits = _good()
    images, labels = splits["train"]
    labels = np.zeros_like(labels)
    labels[0] = 1  # 1 of 40 = 2.5 % < 5 %
    splits["train"] = (images, labels)
    report = check_images(_items(splits), labelled=True)
    balance = [f for f in report.findings if f.check == "label_balance"]
    assert [(f.row, f.value) for f in balance] == [("train", {"1": 1})]
    assert report.passed  # a warning
    config = tmp_path / "q.toml"
    config.write_text("[checks.label_balance]\nthreshold = 0.02\n")
    assert check_images(_items(splits), load_config(config), labelled=True).findings == ()


def test_duplicate_with_a_different_label_says_so() -> None:
    items = _replace(_copy_of("train/0", "test/3")(_items(_good())), "test/3", label=np.uint8(1))
    (finding,) = check_images(items, labelled=True).findings
    assert finding.check == "split_leakage" and finding.value == "train/0"
    assert "different label" in finding.message


def test_expected_format_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("[images]\nshape = [32, 32]\ndtype = 'uint8'\nchannels = 1\n")
    found = _failed(_items(_good()), load_config(config))
    assert len(found["image_format"]) == 60


def test_nan_pixels_are_missing_and_unlabelled_sets_skip_label_checks() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((12, 28, 28)).astype(np.float32)
    images[4, 3, 3] = np.nan
    report = check_images([ImageItem(i, a) for i, a in enumerate(images)], labelled=False)
    assert [(f.check, f.row, f.value) for f in report.findings] == [("image_missing", 4, 1)]
    assert {c.name for c in report.checks if c.name.startswith("label")} == {
        "label_missing", "label_set", "label_balance"
    }  # fmt: skip
    assert all(c.checked == 0 for c in report.checks if c.name.startswith("label"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[images]\nshape = [28]\n", "images.shape"),
        ("[images]\nchannels = 2\n", "images.channels"),
        ("[images]\nsaturated_share = 0\n", "images.saturated_share"),
        ("[images]\nbrightness = 1\n", "images may set only"),
        ("[series]\nconstant_run = 1\n", "series.constant_run"),
        ("[series]\nmax_gap_hours = -2\n", "series.max_gap_hours"),
        ("labels = []\n", "'labels'"),
    ],
)
def test_bad_image_and_series_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "q.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_config(config)


def test_breastmnist_has_one_image_in_both_train_and_test(data_dir: Path) -> None:
    with np.load(data_dir / "medmnist" / "breastmnist.npz") as archive:
        splits = {s: (archive[f"{s}_images"], archive[f"{s}_labels"]) for s in ("train", "val", "test")}
    report = check_images(_items(splits), labelled=True)
    assert [(f.check, f.row, f.value) for f in report.findings] == [("split_leakage", "test/76", "train/115")]
    assert report.summary["labels"]["train"] == {"0": 147, "1": 399}
