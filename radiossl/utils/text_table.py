"""A table as plain data: library code builds it, the console layer renders it (rich or plain text).

Library functions describe a table (title, column names, rows of strings) without knowing where it
is shown; :meth:`TextTable.lines` renders it as aligned plain text (no escape codes), and the CLI's
rich reporter draws the same data as a rich table.

Example:
    >>> table = TextTable("runs", ("name", "loss"), [("a", "0.5"), ("bb", "0.25")], right=(1,))
    >>> print("\\n".join(table.lines()))
    runs
    name  loss
    ----  ----
    a      0.5
    bb    0.25
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextTable:
    """A titled table of strings; ``right`` holds the indices of right-aligned (numeric) columns."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]] = field(default_factory=list)
    right: Sequence[int] = ()

    def lines(self, gap: int = 2) -> list[str]:
        """The table as plain-text lines: the title, the header, a rule and one line per row."""
        widths = [len(name) for name in self.columns]
        for row in self.rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def render(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(widths[index]) if index in self.right else cell.ljust(widths[index])
                for index, cell in enumerate(cells)
            ]
            return (" " * gap).join(parts).rstrip()

        out = [self.title] if self.title else []
        out.append(render(self.columns))
        out.append(render(["-" * width for width in widths]))
        out.extend(render(row) for row in self.rows)
        return out
