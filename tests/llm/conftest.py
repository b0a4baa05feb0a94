"""Fixtures for the LLM provider tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm.fake_openai import FakeOpenAI, running_fake_openai


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on loopback, stopped after the test."""
    async with running_fake_openai() as server:
        yield server
