"""What every probe result offers a notebook: `rows()` (plain dicts), `to_frame()` (pandas) and `to_csv()`.

A result class defines `rows()` (one dict per row of its long-format table) and `plot()` (a plotly
figure from `lame_tools.viz`); this mixin turns the rows into a pandas DataFrame when pandas is
installed (it is optional: without it `to_frame` says so in one sentence) and into CSV text.
"""

from __future__ import annotations

from typing import Any

from lame_tools.errors import InputError
from lame_tools.viz import rows_to_csv


def rows_to_frame(rows: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame of `rows` (InputError in one sentence when pandas is not installed)."""
    try:
        import pandas as pd
    except ImportError:
        raise InputError("to_frame() needs pandas, which is not installed: pip install pandas.") from None
    return pd.DataFrame(rows)


class FrameMixin:
    """`to_frame()` and `rows_csv()` from the class's `rows()`."""

    def rows(self) -> list[dict[str, Any]]:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def to_frame(self) -> Any:
        """The result as a pandas DataFrame (one row per entry of `rows()`)."""
        return rows_to_frame(self.rows())

    def rows_csv(self) -> str:
        """The result's `rows()` as CSV text."""
        return rows_to_csv(self.rows())
