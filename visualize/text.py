"""Small text formats the views share."""

from __future__ import annotations


def percent(probability: float) -> str:
    return f"{probability * 100:.1f} %"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
