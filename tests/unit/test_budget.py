"""Review budgets: windows, policy decisions, and the SQLite counters shared by processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from a2i_worker.budget import (
    MAX_DEFER_SECONDS,
    BudgetAction,
    budget_action,
    defer_seconds,
    fired_always,
    pointer_to_path,
    windows,
)
from a2i_worker.budget_store import SqliteBudgetStore
from a2i_worker.routes import Budget, BudgetPolicy

NOW = datetime(2025, 3, 4, 10, 59, 30, tzinfo=UTC)


def test_windows_are_the_clock_hour_and_the_utc_day() -> None:
    hour, day = windows("inv", Budget(10, 100, BudgetPolicy.DEFER), NOW)
    assert (hour.kind, hour.start, hour.end, hour.limit) == (
        "hour",
        datetime(2025, 3, 4, 10, tzinfo=UTC),
        datetime(2025, 3, 4, 11, tzinfo=UTC),
        10,
    )
    assert (day.start, day.end, day.limit) == (
        datetime(2025, 3, 4, tzinfo=UTC),
        datetime(2025, 3, 5, tzinfo=UTC),
        100,
    )
    assert hour.key != day.key
    assert hour.key.startswith("\x1f")
    assert not hour.key.isprintable()  # can never be a request id
    later = windows("inv", Budget(10, 100, BudgetPolicy.DEFER), NOW + timedelta(minutes=1))
    assert later[0].key != hour.key  # a new hour: a new counter
    assert later[1].key == day.key
    assert [w.kind for w in windows("x", Budget(None, 5, BudgetPolicy.SAMPLE), NOW)] == ["day"]
    with pytest.raises(ValueError, match="aware"):
        windows("x", Budget(1, None, BudgetPolicy.DEFER), datetime(2025, 1, 1))


def test_defer_until_the_window_opens_capped_at_twelve_hours() -> None:
    hour, day = windows("inv", Budget(10, 100, BudgetPolicy.DEFER), NOW)
    assert defer_seconds(hour, NOW) == 30
    assert defer_seconds(day, NOW) == MAX_DEFER_SECONDS  # 13 h left; SQS allows 12 h
    assert defer_seconds(hour, hour.end + timedelta(seconds=5)) == 1  # never 0: no spinning


def test_always_pointers_match_fired_conditions_at_or_inside_them() -> None:
    assert pointer_to_path("/Conditions/1") == "Conditions[1]"
    assert pointer_to_path("/Conditions/0/And/1") == "Conditions[0].And[1]"
    with pytest.raises(ValueError, match="not a JSON pointer to a condition"):
        pointer_to_path("/Conditions/x")
    assert fired_always(["/Conditions/1"], ["Conditions[0]", "Conditions[1].Or[0]"])
    assert fired_always(["/Conditions/0/And/1"], ["Conditions[0].And[1]"])
    assert not fired_always(["/Conditions/1"], ["Conditions[10]", "Conditions[0]"])
    assert not fired_always([], ["Conditions[0]"])


@pytest.mark.parametrize(
    ("policy", "spent", "fired", "expected"),
    [
        (BudgetPolicy.DEFER, False, ["Conditions[0]"], BudgetAction.START),
        (BudgetPolicy.DEFER, True, ["Conditions[1]"], BudgetAction.DEFER),
        (BudgetPolicy.REJECT, True, ["Conditions[1]"], BudgetAction.REJECT),
        (BudgetPolicy.SAMPLE, True, ["Conditions[0]"], BudgetAction.NOT_ACTIVATED),
        (BudgetPolicy.SAMPLE, True, ["Conditions[0]", "Conditions[1]"], BudgetAction.START),
    ],
)
def test_policy_decides_what_a_spent_budget_means(
    policy: BudgetPolicy, spent: bool, fired: list[str], expected: BudgetAction
) -> None:
    budget = Budget(1, None, policy, always=("/Conditions/1",))
    assert budget_action(budget, spent=spent, fired_paths=fired) is expected


async def test_sqlite_counters_are_all_or_nothing_and_shared_by_stores(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first, second = SqliteBudgetStore(path), SqliteBudgetStore(path)
    hour, day = windows("inv", Budget(3, 4, BudgetPolicy.DEFER), NOW)
    assert await first.take([hour, day]) is None
    assert await second.take([hour, day]) is None
    assert await first.take([hour, day]) is None
    full = await second.take([hour, day])
    assert full == hour
    assert await first.usage([hour.key, day.key]) == {hour.key: 3, day.key: 3}  # nothing taken
    next_hour, same_day = windows("inv", Budget(3, 4, BudgetPolicy.DEFER), NOW + timedelta(hours=1))
    assert await first.take([next_hour, same_day]) is None
    assert await second.take([next_hour, same_day]) == same_day  # the day is spent now
    assert await first.usage([next_hour.key]) == {next_hour.key: 1}
    assert await second.take([next_hour, same_day], force=True) is None  # 'always'
    assert await second.usage([same_day.key, "never"]) == {same_day.key: 5, "never": 0}


async def test_sqlite_counters_never_exceed_the_limit_under_concurrency(tmp_path: Path) -> None:
    stores = [SqliteBudgetStore(tmp_path / "ledger.db") for _ in range(4)]
    (day,) = windows("inv", Budget(None, 25, BudgetPolicy.DEFER), NOW)
    taken: list[bool] = []

    async def hammer(store: SqliteBudgetStore) -> None:
        for _ in range(20):
            taken.append(await store.take([day]) is None)

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(hammer, store)
    assert sum(taken) == 25
    assert await stores[0].usage([day.key]) == {day.key: 25}


async def test_a_second_take_by_the_same_request_is_its_first_take(tmp_path: Path) -> None:
    """A message redelivered after a crash between the take and the start: its own take
    is found, not counted again, and not refused as if the budget were spent by others."""
    from fakes.ledger import MemoryBudgetStore

    for store in (SqliteBudgetStore(tmp_path / "ledger.db"), MemoryBudgetStore()):
        (hour,) = windows("inv", Budget(1, None, BudgetPolicy.DEFER), NOW)
        assert await store.take([hour], token="loop-a") is None
        assert await store.take([hour], token="loop-a") is None  # the redelivery
        assert await store.usage([hour.key]) == {hour.key: 1}
        assert await store.take([hour], token="loop-b") == hour  # another request: spent
        assert await store.take([hour], force=True, token="loop-b") is None  # 'always'
        assert await store.take([hour], force=True, token="loop-b") is None
        assert await store.usage([hour.key]) == {hour.key: 2}


async def test_takes_of_windows_that_are_over_are_purged(tmp_path: Path) -> None:
    import sqlite3

    store = SqliteBudgetStore(tmp_path / "ledger.db")
    budget = Budget(5, 50, BudgetPolicy.DEFER)
    assert await store.take(windows("inv", budget, NOW), token="loop-old") is None
    later = windows("inv", budget, NOW + timedelta(days=3))
    assert await store.take(later, token="loop-new") is None

    def tokens() -> set[str]:
        with sqlite3.connect(tmp_path / "ledger.db") as conn:
            return {t for (t,) in conn.execute("SELECT token FROM budget_takes")}

    assert tokens() == {"loop-new"}  # the old windows' takes went, the current ones stay
    assert await store.take(later, token="loop-new") is None  # and still answer
    assert await store.usage([w.key for w in later]) == {w.key: 1 for w in later}
