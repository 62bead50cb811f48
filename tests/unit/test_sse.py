from __future__ import annotations

from comfygate.sse import SseEvent, SseParser


def events(text: str) -> list[SseEvent]:
    parser = SseParser()
    return [e for line in text.split("\n") if (e := parser.feed(line)) is not None]


def test_events_carry_their_own_id_type_and_joined_data() -> None:
    got = events(
        ": keep-alive\n\n"
        'id: 3\nevent: status\ndata: {"a":\ndata: 1}\n\n'
        'event: progress\ndata: {"value": 0.5}\n\n'
        "data: plain\n\n"
    )
    assert got == [
        SseEvent("3", "status", '{"a":\n1}'),
        SseEvent(None, "progress", '{"value": 0.5}'),
        SseEvent(None, "message", "plain"),
    ]
    assert got[0].json() == {"a": 1}


def test_a_block_without_data_is_no_event() -> None:
    assert events("id: 9\nevent: status\n\n: comment\n\n") == []


def test_a_field_without_a_space_after_the_colon() -> None:
    assert events("id:7\nevent:status\ndata:{}\n\n") == [SseEvent("7", "status", "{}")]
