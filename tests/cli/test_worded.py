"""Service errors in the CLI's words: bare fields become the command's options."""

from __future__ import annotations

from jarvis.cli.common import worded
from jarvis.errors import NotFound, ValidationFailed

OPTIONS = {"persona": "--persona", "workflowId": "--workflow-id"}


def test_a_field_the_command_takes_is_named_by_its_option() -> None:
    exc = ValidationFailed.field(["persona"], "unknown persona 'x'")
    assert exc.detail == "persona: unknown persona 'x'"
    assert worded(exc, OPTIONS) == "--persona: unknown persona 'x'"


def test_nested_and_unmapped_fields_keep_their_path() -> None:
    exc = ValidationFailed(
        "two problems",
        errors=[
            {"loc": ["workflowId", 0], "msg": "too small"},
            {"loc": ["config", "labels"], "msg": "required"},
        ],
    )
    assert worded(exc, OPTIONS) == "--workflow-id.0: too small; config.labels: required"


def test_without_field_errors_or_options_the_detail_stands() -> None:
    assert worded(NotFound("no execution 7"), OPTIONS) == "no execution 7"
    assert worded(ValidationFailed.field(["persona"], "bad")) == "persona: bad"
