"""The lab's latency switch: how a delay is written on the command line, and the file the lab
registry reads it from on every request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tofu3.lab.latency import MAX_DELAY_MS, parse_delay, read_delay_ms, render


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100ms", 100),
        ("100", 100),
        ("0.25s", 250),
        ("2s", 2000),
        (" 40 ms ", 40),
        ("off", 0),
        ("0", 0),
        ("OFF", 0),
    ],
)
def test_delays_are_read_in_milliseconds(text: str, expected: int) -> None:
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["fast", "-5ms", "100us", "1e3", "", "ms", f"{MAX_DELAY_MS + 1}"])
def test_anything_else_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(ValueError, match=r"100ms|limit"):
        parse_delay(text)


def test_the_file_round_trips_and_its_absence_means_no_delay(tmp_path: Path) -> None:
    path = tmp_path / "latency.json"
    assert read_delay_ms(path) == 0

    path.write_bytes(render(150))

    assert read_delay_ms(path) == 150


@pytest.mark.parametrize(
    "content", ['{"delay_ms": "100"}', '{"delay_ms": -1}', "[100]", "{", '{"delay_ms": true}']
)
def test_a_file_that_is_not_a_delay_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "latency.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError):
        read_delay_ms(path)
