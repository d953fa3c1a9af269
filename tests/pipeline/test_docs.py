"""docs/pipeline.md is generated from the declaration and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from openflow_pipelines.dar_pipeline import DAR_PIPELINE
from openflow_pipelines.docs import render_pipeline_markdown

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def test_checked_in_pipeline_docs_are_up_to_date() -> None:
    assert DOCS_FILE.read_text(encoding="utf-8") == render_pipeline_markdown(), (
        "regenerate: python -m openflow_pipelines.docs > docs/pipeline.md"
    )


def test_docs_cover_every_table_and_band() -> None:
    text = render_pipeline_markdown()
    for table in DAR_PIPELINE.tables:
        assert f"## Table {table.table_id}: `{table.name}`" in text
        for band in table.priority_bands:
            assert f"| {band.priority} | `{band.name}` |" in text
