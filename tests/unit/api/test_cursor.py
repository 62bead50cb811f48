from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comfygate.api.cursor import SLACK, StreamCursor

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_round_trip() -> None:
    cur = StreamCursor(watermark=T0, seqs={"a": 3, "b": 1})
    back = StreamCursor.decode(cur.encode())
    assert back is not None and back.seqs == {"a": 3, "b": 1} and back.watermark == T0


def test_garbage_decodes_to_none() -> None:
    assert StreamCursor.decode("!!!") is None
    assert StreamCursor.decode("e30") is None  # "{}"


def test_finished_jobs_are_dropped_once_past_the_watermark() -> None:
    cur = StreamCursor(watermark=T0)
    cur.advance("a", 4, T0, terminal=True)
    cur.advance("b", 1, T0, terminal=False)
    assert cur.seqs == {"a": 4, "b": 1}
    later = T0 + 3 * SLACK + timedelta(seconds=1)
    cur.advance("b", 2, later, terminal=False)
    assert cur.seqs == {"b": 2}


def test_seq_never_moves_back() -> None:
    cur = StreamCursor(watermark=T0)
    cur.advance("a", 5, T0, terminal=False)
    cur.advance("a", 3, T0, terminal=False)
    assert cur.seqs["a"] == 5
