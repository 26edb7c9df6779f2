"""The report's stage-timings table: one decimal everywhere, and its own row running."""

from __future__ import annotations

import augment.workdir
from augment.report.doc import Doc
from augment.report.sections import timings_section


def test_timings_have_one_decimal_and_the_report_itself_is_running(monkeypatch):
    monkeypatch.setattr(augment.workdir, "states", lambda cfg: [
        ("synth", "done", {"seconds": 10.4, "peak_rss_mib": 253.7}),
        ("train_sagan", "done", {"seconds": 681.44, "peak_rss_mib": 1291.0}),
        ("edit", "interrupted", None),
        ("report", "interrupted", None),
    ])
    doc = Doc("t")
    timings_section(doc, cfg=None)
    md = doc.render_md()
    assert "| synth | done | 10.4 | 253.7 |" in md
    assert "| train_sagan | done | 681.4 |" in md
    assert "| edit | interrupted |" in md  # another stage killed before its end stays so
    assert "| report | running |" in md
    assert "| total |  | 691.8 |" in md
