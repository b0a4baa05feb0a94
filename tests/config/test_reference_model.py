"""Resolution against a reference model: random values (scopes, windows, deactivations,
versions) are stored as rows, then ``resolve_query`` and ``explain`` must agree with a
small pure-Python model of precedence and effective dating at random instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config import resolver
from jarvis.config.models import ConfigValue
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work

KEY = "agent.timeout_seconds"
DEFAULT = "the default"
BASE = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)

# Values: scopes over a couple of personas, agents and workflows; mostly the first of
# each, so that several values (and versions) apply to the same read.
scopes = st.builds(
    Scope,
    st.sampled_from((None, "admin", None, "admin", "underwriter")),
    st.sampled_from((None, 1, None, 1, 2)),
    st.sampled_from((None, 10, None, 10, 11)),
)
# Reads: half of them name every member, so that many values apply to them.
read_scopes = (
    st.builds(
        Scope,
        st.sampled_from(("admin", "underwriter")),
        st.sampled_from((1, 2)),
        st.sampled_from((10, 11)),
    )
    | scopes
)
FULL_READ = Scope("admin", 1, 10)
# A coarse grid (ten-minute steps) so that windows overlap and boundaries coincide.
steps = st.integers(-6, 6).map(lambda n: 10 * n)


def minutes(n: int) -> datetime:
    return BASE + timedelta(minutes=n)


@dataclass(frozen=True)
class Spec:
    """One stored value, as the model sees it."""

    scope: Scope
    version: int
    start: datetime
    end: datetime | None
    is_active: bool
    deactivated_at: datetime | None
    value: int

    def live_at(self, at: datetime) -> bool:
        active = self.is_active or (self.deactivated_at is not None and self.deactivated_at > at)
        return active and self.start <= at and (self.end is None or self.end > at)

    def not_live_status(self, at: datetime) -> str | None:
        if not self.is_active and (self.deactivated_at is None or self.deactivated_at <= at):
            return "inactive"
        if self.start > at:
            return "scheduled"
        if self.end is not None and self.end <= at:
            return "expired"
        return None


def applies(value: Scope, read: Scope) -> bool:
    return all(mine is None or mine == theirs for mine, theirs in zip(value, read, strict=True))


def model_winner(specs: list[Spec], read: Scope, at: datetime) -> Spec | None:
    live = [s for s in specs if applies(s.scope, read) and s.live_at(at)]
    if not live:
        return None
    return max(live, key=lambda s: (s.scope.rank, s.version))


def model_statuses(specs: list[Spec], read: Scope, at: datetime) -> dict[int, str]:
    winner = model_winner(specs, read, at)
    out: dict[int, str] = {}
    for spec in specs:
        if not applies(spec.scope, read):
            continue
        status = spec.not_live_status(at)
        if status is None:
            assert winner is not None
            if spec is winner:
                status = "winner"
            elif spec.scope == winner.scope:
                status = "superseded"
            else:
                status = "outranked"
        out[spec.value] = status
    return out


@st.composite
def value_specs(draw: st.DrawFn) -> list[Spec]:
    """Up to 16 values; versions within each exact scope are 1..n in a random order."""
    raw = draw(
        st.lists(
            st.tuples(
                scopes,
                steps,  # effective_from, minutes from BASE
                st.none() | st.integers(1, 6).map(lambda n: 10 * n),  # window length
                st.sampled_from(["active", "active", "deactivated", "deactivated-unknown"]),
                steps,  # deactivated_at, minutes from BASE
            ),
            min_size=1,
            max_size=16,
        )
    )
    by_scope: dict[Scope, int] = {}
    for scope, *_ in raw:
        by_scope[scope] = by_scope.get(scope, 0) + 1
    versions = {
        scope: iter(draw(st.permutations(range(1, count + 1)))) for scope, count in by_scope.items()
    }
    specs = []
    for index, (scope, start, length, state, deactivated) in enumerate(raw):
        specs.append(
            Spec(
                scope=scope,
                version=next(versions[scope]),
                start=minutes(start),
                end=None if length is None else minutes(start + length),
                is_active=state == "active",
                deactivated_at=minutes(deactivated) if state == "deactivated" else None,
                value=1000 + index,
            )
        )
    return specs


def edges(specs: list[Spec]) -> list[datetime]:
    """Every boundary of ``specs``, and the microsecond before it."""
    out = {BASE}
    for spec in specs:
        for edge in (spec.start, spec.end, spec.deactivated_at):
            if edge is not None:
                out.update((edge - timedelta(microseconds=1), edge))
    return sorted(out)


def instants(specs: list[Spec]) -> st.SearchStrategy[datetime]:
    """Random instants, boundaries likely."""
    return st.sampled_from(edges(specs)) | st.integers(-80, 80).map(minutes)


async def store(db: Database, specs: list[Spec]) -> dict[int, int]:
    """Replace every value of KEY with ``specs``; answer row id -> spec value."""
    ids: dict[int, int] = {}
    async with unit_of_work(db) as session:
        await session.execute(delete(ConfigValue))
        rows = [
            ConfigValue(
                config_key=KEY,
                value=spec.value,
                scope_identifiers=spec.scope.as_json(),
                persona=spec.scope.persona,
                agent_id=spec.scope.agent_id,
                workflow_id=spec.scope.workflow_id,
                scope_key=spec.scope.key,
                scope_rank=spec.scope.rank,
                effective_from=spec.start,
                effective_to=spec.end,
                version=spec.version,
                is_active=spec.is_active,
                deactivated_at=spec.deactivated_at,
                created_by="tests",
                created_at=BASE - timedelta(days=1),
            )
            for spec in specs
        ]
        session.add_all(rows)
        await session.flush()
        for row in rows:
            ids[row.id] = row.value
    return ids


def boundaries_after(specs: list[Spec], read: Scope, at: datetime) -> list[datetime]:
    out = set()
    for spec in specs:
        if applies(spec.scope, read):
            for edge in (spec.start, spec.end, spec.deactivated_at):
                if edge is not None and edge > at:
                    out.add(edge)
    return sorted(out)


def value_of(winner: Spec | None) -> Any:
    return DEFAULT if winner is None else winner.value


async def check(
    session: AsyncSession, specs: list[Spec], ids: dict[int, int], read: Scope, at: datetime
) -> None:
    """``resolve_query`` and ``explain`` at (read, at) agree with the model."""
    expected = model_winner(specs, read, at)
    got = await resolver.resolve_query(session, KEY, read, at, DEFAULT)
    context = (read, at)

    assert got.value == value_of(expected), context
    if expected is None:
        assert (got.source, got.version, got.value_id) == ("default", None, None), context
    else:
        assert got.source == expected.scope.level.value, context
        assert got.version == expected.version, context
        assert got.value_scope == expected.scope, context
        assert got.value_id is not None
        assert ids[got.value_id] == expected.value, context
        assert (got.effective_from, got.effective_to) == (expected.start, expected.end), context

    # valid_until is a sound cache bound: it is in the future, and the model's answer
    # holds at every boundary before it. Only a read of the present is cached, and in the
    # present no value has a deactivation still to come.
    if got.valid_until is not None:
        assert got.valid_until > at, context
    if not any(s.deactivated_at and s.deactivated_at > at for s in specs):
        for edge in boundaries_after(specs, read, at):
            if got.valid_until is not None and edge >= got.valid_until:
                break
            assert value_of(model_winner(specs, read, edge)) == got.value, (context, edge)

    candidates = await resolver.explain(session, KEY, read, at)
    statuses = {ids[c.value_id]: c.status for c in candidates}
    assert statuses == model_statuses(specs, read, at), context
    winners = [ids[c.value_id] for c in candidates if c.status == "winner"]
    assert winners == ([] if expected is None else [expected.value]), context
    order = [(c.scope.rank, c.version) for c in candidates]
    assert order == sorted(order, reverse=True), context


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), specs=value_specs())
async def test_resolution_agrees_with_the_reference_model(
    db: Database, data: st.DataObject, specs: list[Spec]
) -> None:
    ids = await store(db, specs)
    reads = data.draw(st.lists(st.tuples(read_scopes, instants(specs)), min_size=1, max_size=8))
    async with unit_of_work(db, write=False) as session:
        for read, at in reads:
            await check(session, specs, ids, read, at)
        # Every boundary, for the read that the most values apply to.
        for at in edges(specs):
            await check(session, specs, ids, FULL_READ, at)
