"""``medfusion quality check``: reports on disk, the JSON line, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medfusion.cli.main import app

runner = CliRunner()
GOOD = "age,hr,temp,ph,name\n40,80,37.0,7.40,a\n63,110,38.5,7.31,b\n71,64,36.2,7.45,c\n"
BAD = GOOD + "150,80,37.0,7.40,d\n40,-1,37.0,7.40,e\n40,80,37.0,x,f\n40,80,37.0,x,f\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


def test_good_table_passes_and_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["quality", "check", "--data", str(_write(tmp_path, GOOD)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "passed" in result.output
    document = json.loads((out / "quality.json").read_text())
    assert document["passed"] is True and document["findings"] == []
    page = (out / "quality.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page and "http" not in page


def test_json_line_shape_and_exit_code_on_errors(tmp_path: Path) -> None:
    data = _write(tmp_path, BAD)
    result = runner.invoke(
        app, ["quality", "check", "--data", str(data), "--out", str(tmp_path / "o"), "--json"]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["catalogue_version"] == "2026.12" and document["passed"] is False
    found = {(f["check"], f["column"]): f for f in document["findings"]}
    assert set(found) == {
        ("plausible_range", "age"), ("sentinel", "hr"), ("value_type", "ph"), ("duplicate_rows", None)
    }  # fmt: skip
    for finding in document["findings"]:
        assert set(finding) >= {"check", "category", "severity", "column", "count", "examples"}
    assert found[("plausible_range", "age")]["examples"] == [{"row": 3, "value": 150}]
    assert found[("value_type", "ph")]["count"] == 2
    assert {c["name"] for c in document["checks"]} >= {"value_type", "plausible_range"}


def test_warnings_alone_exit_zero(tmp_path: Path) -> None:
    data = _write(tmp_path, GOOD + "40,80,37.0,7.40,a\n")  # a duplicate: warning severity
    result = runner.invoke(
        app, ["quality", "check", "--data", str(data), "--out", str(tmp_path / "o"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["findings"][0]["check"] == "duplicate_rows"


def test_config_can_turn_an_error_into_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("[checks.plausible_range]\nseverity = 'warning'\n")
    data = _write(tmp_path, GOOD + "150,80,37.0,7.40,d\n")
    args = ["quality", "check", "--data", str(data), "--config", str(config), "--out", str(tmp_path / "o")]
    assert runner.invoke(app, args).exit_code == 0


def test_bad_input_is_one_line_and_non_zero(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[checks.nope]\n")
    data = _write(tmp_path, GOOD)
    cases = [
        (["--data", str(tmp_path / "absent.csv")], "does not exist"),
        (["--data", str(empty)], "is empty"),
        (["--data", str(data), "--config", str(bad_config)], "unknown check 'nope'"),
        (["--data", str(data), "--config", str(tmp_path / "none.toml")], "does not exist"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["quality", "check", *args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # bad input writes nothing
