"""Flow definitions and human task UIs of one account and region (pure: the clock is passed in).

Promises (SageMaker's documented behaviour; decisions marked):
- Names are unique per account and region among existing resources: creating a name that
  exists (in any status) is :class:`InUseError` (ResourceInUse).
- A flow definition is ``Initializing`` for ``activation_seconds`` after it is created,
  then ``Active``; only an Active flow accepts StartHumanLoop. Delete moves it to
  ``Deleting`` for ``deletion_seconds``, after which it is gone and its name is free again.
  Statuses are computed from the clock when read, so no timer is involved.
- Listing: every existing resource (Deleting included), by CreationTime with the given sort
  order and inclusive time filters; NextToken bound to the query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from a2i_emulator.reviewers import ReviewerSpec
from a2i_emulator.tokens import TokenCodec

__all__ = [
    "FlowDefinition",
    "FlowRegistry",
    "HumanTaskUi",
    "InUseError",
    "NotFoundError",
    "Page",
    "Registry",
]


class InUseError(Exception):
    """The name is taken (ResourceInUse)."""


class NotFoundError(Exception):
    """No such resource (ResourceNotFound)."""


@dataclass
class HumanTaskUi:
    name: str
    arn: str
    template: str
    creation_time: float
    deleted_at: float | None = None

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def status(self, now: float, deletion_seconds: float) -> str | None:
        """``Active`` | ``Deleting`` | ``None`` (gone)."""
        if self.deleted_at is None:
            return "Active"
        return "Deleting" if now < self.deleted_at + deletion_seconds else None


@dataclass
class FlowDefinition:
    """One flow definition: what CreateFlowDefinition was given, plus the emulator's reviewers."""

    name: str
    arn: str
    output_s3_uri: str
    bucket: str
    prefix: str
    role_arn: str
    creation_time: float
    request: dict[str, Any] = field(default_factory=dict)
    """The CreateFlowDefinition members Describe echoes (HumanLoopConfig, ...)."""
    reviewers: ReviewerSpec | None = None
    active_after: float = 0.0
    deleted_at: float | None = None

    def status(self, now: float, deletion_seconds: float) -> str | None:
        """``Initializing`` | ``Active`` | ``Deleting`` | ``None`` (gone)."""
        if self.deleted_at is not None:
            return "Deleting" if now < self.deleted_at + deletion_seconds else None
        return "Active" if now >= self.active_after else "Initializing"


R = TypeVar("R", FlowDefinition, HumanTaskUi)


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_token: str | None


class Registry(Generic[R]):
    """Resources of one kind by name, with the lifecycle and listing rules above."""

    def __init__(
        self, kind: str, tokens: TokenCodec, clock: Callable[[], float], deletion_seconds: float
    ) -> None:
        self.kind = kind
        self.deletion_seconds = deletion_seconds
        self._tokens = tokens
        self._clock = clock
        self._items: dict[str, R] = {}

    def _status(self, item: R) -> str | None:
        return item.status(self._clock(), self.deletion_seconds)

    def _purge(self, name: str) -> R | None:
        item = self._items.get(name)
        if item is not None and self._status(item) is None:
            del self._items[name]
            return None
        return item

    def status(self, item: R) -> str:
        status = self._status(item)
        if status is None:
            raise NotFoundError(f"{self.kind} {item.name} does not exist.")
        return status

    def get(self, name: str) -> R:
        item = self._purge(name)
        if item is None:
            raise NotFoundError(f"{self.kind} {name} does not exist.")
        return item

    def find(self, name: str) -> R | None:
        return self._purge(name)

    def add(self, item: R) -> R:
        if self._purge(item.name) is not None:
            raise InUseError(f"{self.kind} {item.name} already exists.")
        self._items[item.name] = item
        return item

    def delete(self, name: str) -> R:
        item = self.get(name)
        if item.deleted_at is None:
            item.deleted_at = self._clock()
        return item

    def __iter__(self) -> Iterator[R]:
        for name in list(self._items):
            item = self._purge(name)
            if item is not None:
                yield item

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def clear(self) -> None:
        self._items.clear()

    def list(
        self,
        *,
        after: float | None,
        before: float | None,
        sort_order: str,
        max_results: int,
        next_token: str | None,
    ) -> Page[R]:
        """One page, ordered by (CreationTime, name); ``TokenError`` for a foreign token."""
        query = TokenCodec.query_id(self.kind, after, before, sort_order)
        start = 0 if next_token is None else self._tokens.decode(next_token, query)
        items = [
            i
            for i in self
            if (after is None or i.creation_time >= after)
            and (before is None or i.creation_time <= before)
        ]
        items.sort(key=lambda i: (i.creation_time, i.name), reverse=sort_order == "Descending")
        page = items[start : start + max_results]
        more = start + max_results < len(items)
        return Page(page, self._tokens.encode(query, start + max_results) if more else None)


class FlowRegistry(Registry[FlowDefinition]):
    """Flow definitions, also found by ARN (StartHumanLoop and ListHumanLoops name them so)."""

    def by_arn(self, arn: str) -> FlowDefinition | None:
        name = arn.rpartition("/")[2]
        flow = self.find(name)
        return flow if flow is not None and flow.arn == arn else None
