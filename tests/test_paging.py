"""The keyset pager (app.paging) on a real table of its own: both directions, both key shapes
(one id, a timestamp and an id), ties, rows arriving between pages, and cursors refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.errors import DomainError
from app.extensions import db
from app.models.types import BigIntPK, UTCDateTime
from app.paging import (
    BadCursor,
    Cursor,
    Page,
    decode,
    encode,
    keyset_page,
    seek,
    token_page,
    url_cursor,
)

NOON = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Item(Base):
    """A row of a list: newest first by (created_at, id), or A-Z by name."""

    __tablename__ = "paging_test_items"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    name: Mapped[str] = mapped_column(String(40), unique=True)


KEY = (Item.created_at, Item.id)
ITEMS = select(Item)


@pytest.fixture
def table(app: Flask) -> Iterator[None]:
    Base.metadata.create_all(db.engine)
    yield
    db.session.rollback()
    Base.metadata.drop_all(db.engine)


def add(count: int, start: int = 0, same_moment: bool = False) -> list[Item]:
    """``count`` items a minute apart (or all at noon), in id order."""
    items = [
        Item(
            created_at=NOON if same_moment else NOON + timedelta(minutes=start + n),
            name=f"item {start + n:04d}",
        )
        for n in range(count)
    ]
    db.session.add_all(items)
    db.session.commit()
    return items


def newest_first() -> list[int]:
    return list(
        db.session.scalars(select(Item.id).order_by(Item.created_at.desc(), Item.id.desc()))
    )


def ids(page: Page) -> list[int]:
    return [row.id for row in page.rows]


def walk_tokens(size: int) -> list[list[int]]:
    """Every page newest first through the opaque tokens, as the API lists give them."""
    pages, token = [], None
    while True:
        page = token_page(ITEMS, KEY, size, token)
        pages.append([row.id for row in page["items"]])
        assert page["page_size"] == size
        assert (page["previous_cursor"] is None) == (token is None)
        token = page["next_cursor"]
        if token is None:
            return pages


@pytest.mark.parametrize("count,size", [(1, 3), (3, 3), (10, 3), (10, 10), (10, 1)])
def test_pages_cover_the_list_once_in_order_both_ways(table: None, count: int, size: int) -> None:
    add(count)
    pages = walk_tokens(size)
    assert [i for page in pages for i in page] == newest_first()
    assert all(len(page) == size for page in pages[:-1]) and 0 < len(pages[-1]) <= size
    forward = [keyset_page(ITEMS, KEY, size)]
    while forward[-1].next is not None:
        forward.append(keyset_page(ITEMS, KEY, size, forward[-1].next))
    assert [ids(page) for page in forward] == pages and forward[0].previous is None
    # Back from the last page through each previous cursor (as a token): the same pages.
    back = [forward[-1]]
    while back[-1].previous is not None:
        page = keyset_page(ITEMS, KEY, size, decode(encode(back[-1].previous) or "", KEY))
        assert page.next is not None  # a page read back always has one after it
        back.append(page)
    assert [ids(page) for page in back[::-1]] == pages


def test_first_and_last_pages_have_no_cursor_beyond_them(table: None) -> None:
    add(5)
    first = keyset_page(ITEMS, KEY, 5)
    assert ids(first) == newest_first() and first.next is None and first.previous is None
    two = keyset_page(ITEMS, KEY, 2)
    assert two.previous is None and two.next == Cursor((two.rows[-1].created_at, two.rows[-1].id))
    # A previous page read back to the newest row says no page precedes it.
    second = keyset_page(ITEMS, KEY, 2, two.next)
    again = keyset_page(ITEMS, KEY, 2, second.previous)
    assert ids(again) == ids(two) and again.previous is None and again.next == two.next


def test_an_empty_list_and_a_cursor_past_the_end(table: None) -> None:
    for cursor in (None, Cursor((NOON, 1)), Cursor((NOON, 1), forward=False)):
        page = keyset_page(ITEMS, KEY, 10, cursor)
        assert page == Page([], None, None)
    assert token_page(ITEMS, KEY, 10, None) == {
        "items": [],
        "page_size": 10,
        "next_cursor": None,
        "previous_cursor": None,
    }
    add(3)
    past = keyset_page(ITEMS, KEY, 10, Cursor((NOON - timedelta(days=1), 1)))
    assert past == Page([], None, None)


def test_equal_timestamps_are_ordered_by_id(table: None) -> None:
    add(3)
    tied = add(7, start=100, same_moment=True)
    pages, cursor = [], None
    while True:
        page = keyset_page(ITEMS, KEY, 3, cursor)
        pages.append(ids(page))
        if page.next is None:
            break
        cursor = page.next
    flat = [i for page in pages for i in page]
    assert flat == newest_first() and len(set(flat)) == 10
    at_noon = [i for i in flat if i in {t.id for t in tied}]
    assert at_noon == sorted(at_noon, reverse=True)
    # A page boundary inside the tie, read back: the same rows.
    inside = keyset_page(ITEMS, KEY, 3, Cursor((NOON, tied[3].id), forward=False))
    assert ids(inside) == [tied[6].id, tied[5].id, tied[4].id]


def test_rows_arriving_between_pages_do_not_shift_the_next_page(table: None) -> None:
    add(10)
    first = keyset_page(ITEMS, KEY, 4)
    expected = ids(keyset_page(ITEMS, KEY, 4, first.next))
    newest = first.rows[0]
    add(3, start=500)  # newer than everything
    db.session.add(Item(created_at=newest.created_at, name="tied with the newest"))
    db.session.commit()
    assert ids(keyset_page(ITEMS, KEY, 4, first.next)) == expected
    # Back from the first page's newest row: the four arrivals, newest first, and no more.
    back = keyset_page(ITEMS, KEY, 4, Cursor((newest.created_at, newest.id), forward=False))
    assert ids(back) == newest_first()[:4] and back.previous is None
    assert back.next == Cursor((back.rows[-1].created_at, back.rows[-1].id))
    assert ids(keyset_page(ITEMS, KEY, 4, back.next)) == ids(first)


def test_one_id_newest_first_with_before_and_after(table: None) -> None:
    items = add(7)
    by_id = [Item.id]
    first = keyset_page(ITEMS, by_id, 3, url_cursor(None, None))
    assert ids(first) == [i.id for i in items[::-1][:3]]
    assert first.previous is None and first.next is not None
    older = keyset_page(ITEMS, by_id, 3, url_cursor(first.next.value, None))
    assert ids(older) == [i.id for i in items[::-1][3:6]]
    assert older.previous is not None and older.previous.value == older.rows[0].id
    newer = keyset_page(ITEMS, by_id, 3, url_cursor(None, older.previous.value))
    assert ids(newer) == ids(first) and newer.previous is None
    last = keyset_page(ITEMS, by_id, 3, url_cursor(older.next.value if older.next else None, None))
    assert ids(last) == [items[0].id] and last.next is None and last.previous is not None
    # Both given (an edited URL): the previous page's cursor wins, as it always has.
    both = keyset_page(ITEMS, by_id, 3, url_cursor(items[1].id, items[3].id))
    assert ids(both) == [items[6].id, items[5].id, items[4].id]


def test_ascending_by_name_after_and_before(table: None) -> None:
    add(5)
    by_name = [Item.name]
    first = keyset_page(ITEMS, by_name, 2, url_cursor(None, None), descending=False)
    assert [r.name for r in first.rows] == ["item 0000", "item 0001"]
    assert first.next is not None and first.next.value == "item 0001" and first.previous is None
    second = keyset_page(ITEMS, by_name, 2, url_cursor(first.next.value, None), descending=False)
    assert [r.name for r in second.rows] == ["item 0002", "item 0003"]
    assert second.previous == Cursor(("item 0002",), False)
    back = keyset_page(ITEMS, by_name, 2, url_cursor(None, second.previous.value), descending=False)
    assert [r.name for r in back.rows] == ["item 0000", "item 0001"] and back.previous is None


def test_result_rows_and_a_fetch_of_ones_own(table: None) -> None:
    add(4)
    columns = select(Item.id, Item.created_at, Item.name)
    page = keyset_page(columns, KEY, 3)
    assert [row.id for row in page.rows] == newest_first()[:3]
    assert page.next == Cursor((page.rows[-1].created_at, page.rows[-1].id))
    joined = select(Item, Item.name)  # rows of (entity, column): the key comes from key_of
    page = keyset_page(joined, KEY, 3, key_of=lambda row: (row[0].created_at, row[0].id))
    assert [row[0].id for row in page.rows] == newest_first()[:3]
    calls: list[tuple[Cursor | None, int]] = []

    def fetch(cursor: Cursor | None, limit: int) -> list[Any]:
        calls.append((cursor, limit))
        return list(db.session.scalars(seek(ITEMS, KEY, cursor).limit(limit)))

    page = keyset_page(ITEMS, KEY, 2, Cursor((NOON + timedelta(minutes=3), 4)), fetch=fetch)
    assert calls == [(Cursor((NOON + timedelta(minutes=3), 4)), 3)]  # one row beyond the page
    assert ids(page) == newest_first()[1:3]


def test_tokens_keep_the_format_the_api_issued() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    token = encode(Cursor((moment, 42)))
    assert token is not None and "=" not in token
    assert (
        base64.urlsafe_b64decode(token + "==") == b'["2026-01-02T03:04:05.000006+00:00",42,"next"]'
    )
    assert decode(token, KEY) == Cursor((moment, 42))
    assert decode(encode(Cursor((moment, 42), False)) or "", KEY) == Cursor((moment, 42), False)
    assert encode(None) is None
    # Padded and spaced as another encoder would write it: still one of ours.
    spaced = base64.urlsafe_b64encode(b'["2026-01-02T03:04:05+01:00", 7, "prev"]').decode()
    decoded = decode(spaced, KEY)
    assert decoded.key == (datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC), 7) and not decoded.forward


def _b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json(*values: Any) -> str:
    return _b64(json.dumps(values))


BAD_TOKENS = [
    "",
    "garbage",
    "not-a-cursor",
    "WyJ4IiwxLCJuZXh0Il0",  # ["x",1,"next"]
    "!!!!",
    "é" * 8,
    "\x00",
    "WyIyMDI2LTAxLTAyVDAzOjA0OjA1KzAwOjAwIiw0MiwibmV4dCJd\x00",  # a good token, then NUL
    _b64(b"\x00\xff\xfe junk"),
    _b64("not json"),
    _b64("{}"),
    _b64('{"a": 1}'),
    _b64("[]"),
    _b64('"next"'),
    _b64("42"),
    _b64("null"),
    _b64("[" * 5000 + "]" * 5000),
    _json("2026-01-02T03:04:05+00:00", 1),  # no direction
    _json("2026-01-02T03:04:05+00:00", 1, "sideways"),
    _json("2026-01-02T03:04:05+00:00", 1, ["next"]),
    _json("2026-01-02T03:04:05+00:00", "next"),  # a value missing
    _json("2026-01-02T03:04:05+00:00", 1, 2, "next"),  # one too many
    _json(1, "2026-01-02T03:04:05+00:00", "next"),  # swapped
    _json("2026-01-02T03:04:05", 1, "next"),  # naive
    _json("0001-01-01T00:00:00+14:00", 1, "next"),
    _json("9999-12-31T23:59:00-14:00", 1, "prev"),
    _json("2026-01-02T03:04:05\u0000+00:00", 1, "next"),
    _json("2026-01-02T03:04:05Z", 1, "next"),  # not as encode writes it
    _json("2026-13-45T99:00:00+00:00", 1, "next"),
    _json("2026-01-02T03:04:05+00:00", True, "next"),
    _json("2026-01-02T03:04:05+00:00", 1.0, "next"),
    _json("2026-01-02T03:04:05+00:00", "1", "next"),
    _json("2026-01-02T03:04:05+00:00", None, "next"),
    _json("2026-01-02T03:04:05+00:00", 2**63, "next"),
    _json("2026-01-02T03:04:05+00:00", -(2**63), "next"),
    _json("2026-01-02T03:04:05+00:00", 10**30, "next"),
    _b64('["2026-01-02T03:04:05+00:00", 1e999, "next"]'),
    _b64('["2026-01-02T03:04:05+00:00", ' + "9" * 5000 + ', "next"]'),
    _b64('["2026-01-02T03:04:05+00:00", NaN, "next"]'),
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_bad_cursors_are_refused(token: str) -> None:
    with pytest.raises(BadCursor) as refused:
        decode(token, KEY)
    error = refused.value
    assert isinstance(error, DomainError) and error.http_status == 400
    assert error.code == "bad_cursor" and "not valid" in error.message


def test_a_text_key_refuses_nul_and_other_types() -> None:
    by_name = [Item.name]
    assert decode(_json("item 1", "next"), by_name) == Cursor(("item 1",))
    for value in ("a\x00b", 1, None, ["x"]):
        with pytest.raises(BadCursor):
            decode(_json(value, "next"), by_name)


def test_a_bad_token_is_refused_before_any_query(table: None) -> None:
    add(2)
    with pytest.raises(BadCursor):
        token_page(ITEMS, KEY, 10, _json("0001-01-01T00:00:00+14:00", 1, "next"))
    assert token_page(ITEMS, KEY, 10, "")["previous_cursor"] is None  # empty: the first page
