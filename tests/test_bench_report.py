"""`eyemotion bench`'s report: headline figures collected from bench/results/*.json, and what the header says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eyemotion import UserError
from eyemotion.bench_report import collect, to_markdown


def test_collected_figures_and_a_header_that_says_nothing_was_rerun(tmp_path: Path) -> None:
    (tmp_path / "dashboard.json").write_text(json.dumps({"redraw_passes_per_s": 30.2}))
    report = collect(tmp_path)
    row = next(r for r in report["headlines"] if r["figure"] == "dashboard redraw rate")
    assert row["value"] == "30.2"
    assert all(r["value"].strip("- /") == "" for r in report["headlines"] if r["benchmark"] != "dashboard")
    assert to_markdown(report).startswith("Benchmarks of ")
    report["collected_only"] = True
    assert to_markdown(report).startswith("Collected on ") and "nothing was rerun" in to_markdown(report)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="broken.json is not valid JSON"):
        collect(tmp_path)
