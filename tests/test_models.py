"""Records between stages refuse naive or non-UTC datetimes, so a local-time bug cannot travel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeder.models import Entry, Problem, RawDocument, RefreshReport, SourceReport

PARIS_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize("moment", [datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=PARIS_WINTER)])
def test_naive_or_local_datetimes_are_refused(moment: datetime) -> None:
    with pytest.raises(ValueError, match="must be aware UTC"):
        RawDocument(source="seeds", locator="x", content=b"", retrieved_at=moment)


def test_subclass_fields_are_checked_too() -> None:
    common = {
        "url": "https://www.rfi.fr/cn/a/1",
        "title": "t",
        "section": None,
        "categories": (),
        "author": None,
        "lead": "",
        "image": None,
        "content_html": "",
        "published": datetime(2024, 1, 1, tzinfo=UTC),
    }
    Entry(**common, updated=datetime(2024, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Entry\.updated"):
        Entry(**common, updated=datetime(2024, 1, 1, tzinfo=PARIS_WINTER))  # type: ignore[arg-type]


def test_a_report_becomes_plain_json_data() -> None:
    report = RefreshReport(
        sources=(
            SourceReport("seeds", new=1, problems=(Problem("a.txt", "empty"),), duration=0.5),
            SourceReport("rfi", requests=(("www.rfi.fr", "200", 3), ("www.rfi.fr", "error", 1))),
        ),
        written=(Path("/out/rfi-cn.atom"),),
        feeds=(("rfi-cn", 50), ("rfi-cn/中国", 20)),
    )
    assert report.to_dict() == {
        "sources": [
            {
                "source": "seeds",
                "new": 1,
                "updated": 0,
                "unchanged": 0,
                "skipped": 0,
                "problems": [{"locator": "a.txt", "reason": "empty"}],
                "failure": None,
                "duration": 0.5,
                "recent": 0,
                "degraded": None,
                "waiting": None,
                "requests": [],
            },
            {
                "source": "rfi",
                "new": 0,
                "updated": 0,
                "unchanged": 0,
                "skipped": 0,
                "problems": [],
                "failure": None,
                "duration": 0.0,
                "recent": 0,
                "degraded": None,
                "waiting": None,
                "requests": [["www.rfi.fr", "200", 3], ["www.rfi.fr", "error", 1]],
            },
        ],
        "written": ["/out/rfi-cn.atom"],
        "unchanged_files": [],
        "topics": [],
        "feeds": {"rfi-cn": 50, "rfi-cn/中国": 20},
    }
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()
    assert not report.failed
    assert RefreshReport(sources=(SourceReport("seeds", failure="gone"),)).failed
