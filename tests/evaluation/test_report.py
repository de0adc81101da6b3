"""The evaluation report on disk: a report that cannot be written leaves the previous one."""

import json

import pytest

from t2i_keras.evaluation import report as report_module
from t2i_keras.utils import files


def test_a_report_that_cannot_be_written_keeps_the_previous_one(tmp_path, disk_full, monkeypatch):
    monkeypatch.setattr(report_module, "format_markdown", lambda r: f"# {r['model']}\n")
    json_path, markdown_path = report_module.write_report({"model": "first"}, tmp_path)
    good = json_path.read_bytes(), markdown_path.read_bytes()
    with disk_full(100), pytest.raises(files.WriteFailedError, match=str(json_path)):
        report_module.write_report({"model": "second", "padding": "x" * 1000}, tmp_path)
    assert (json_path.read_bytes(), markdown_path.read_bytes()) == good
    assert json.loads(good[0])["model"] == "first"
