"""Which rows of an input file are valid, and what becomes of those that are not.

A `RowChecks` follows one file's tables in order. The converters (columns.py)
and the readers mark the rows they cannot use: a cell that is empty or not a
number, a NaN or infinite value, a price that is not positive, a negative size,
a timestamp outside `TS_MIN`..`TS_MAX`, text that is not UTF-8, a CSV row with
the wrong number of cells. By default the first bad row refuses the file with
one line naming the file and the row (`InputError`); with
`RowPolicy.skip_bad_rows` bad rows are left out and counted for the summary.

Checks are column-wise (numpy), so a valid file pays a few vector passes per
table; finding *which* cell of a column Arrow refused to convert is done only
when a conversion fails (`failing`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.detect import InputError

if TYPE_CHECKING:
    from adapters.files.detect import Source

# Market data lives between these instants (UTC). Epoch *numbers* must also be
# after EPOCH_MIN: a number that small is a wrong column or --ts-unit, not a
# market time, while text dates may go back to 1900 (old daily bars).
TS_MIN = -2_208_988_800 * 10**9  # 1900-01-01
EPOCH_MIN = 31_536_000 * 10**9  # 1971-01-01
TS_MAX = 4_102_444_800 * 10**9  # 2100-01-01
_TS_TEXT = {TS_MIN: "1900-01-01", EPOCH_MIN: "1971-01-01", TS_MAX: "2100-01-01"}

_EXAMPLES = 5  # row numbers named in the summary of skipped rows


@dataclass(frozen=True)
class RowPolicy:
    """What an import does with rows that fail a check."""

    skip_bad_rows: bool = False  # leave them out and count them, rather than refuse the file
    allow_nonpositive_prices: bool = False  # spreads and some futures trade at or below zero


Why = Callable[[int], str]  # the reason a row (index in its table) is bad


class RowChecks:
    """The bad rows of one file, table after table.

    For each table: `begin(n)`, then the converters `mark` bad rows, then
    `done()` refuses the file at the first bad row (InputError) or, when
    skipping, returns the mask of rows to keep."""

    def __init__(self, source: Source, policy: RowPolicy) -> None:
        self.source = source
        self.policy = policy
        self.skipped = 0
        self.notes: list[str] = []
        self.empty_columns: set[str] = set()  # optional columns the file leaves empty
        self._examples: list[tuple[int, str]] = []  # (row number, reason), the first few
        self._offset = 0  # rows of the file before the current table
        self._n = 0
        self._bad: np.ndarray | None = None
        self._first: tuple[int, Why] | None = None

    @property
    def first_table(self) -> bool:
        return self._offset == 0

    def begin(self, n: int) -> None:
        """Start checking the next table of the file, of `n` rows."""
        self._offset += self._n
        self._n = n
        self._bad = None
        self._first = None

    def mark(self, bad: np.ndarray, why: Why) -> None:
        """Rows where `bad` is true fail a check; `why(i)` says how row i does."""
        hits = np.flatnonzero(bad)
        if not len(hits):
            return
        self._bad = bad.copy() if self._bad is None else self._bad | bad
        first = int(hits[0])
        if self._first is None or first < self._first[0]:
            self._first = (first, why)

    @property
    def refusing(self) -> bool:
        return not self.policy.skip_bad_rows

    def refuse_now(self) -> None:
        """Refuse at the earliest row marked so far in this table (used when
        finding every bad cell would cost more than the refusal needs)."""
        if self._first is not None and self.refusing:
            index, why = self._first
            raise self._refusal(self.row_number(index), why(index))

    def done(self) -> np.ndarray | None:
        """The table's verdict: None when every row is valid, else the mask of
        rows to keep (skipping); refusing, InputError at the first bad row."""
        bad, first = self._bad, self._first
        if bad is None or first is None:
            return None
        index, why = first
        if self.refusing:
            raise self._refusal(self.row_number(index), why(index))
        hits = np.flatnonzero(bad)
        self.skipped += len(hits)
        if len(self._examples) < _EXAMPLES:
            for i in hits[:_EXAMPLES].tolist():
                self._examples.append((self.row_number(i), why(i) if i == index else ""))
            self._examples = sorted(self._examples)[:_EXAMPLES]
        return ~bad

    def malformed(self, number: int | None, reason: str) -> None:
        """A row the reader could not split into the file's columns (it never
        reaches a table): refused, or counted as skipped."""
        if self.refusing:
            where = f"row {number}" if number is not None else "a row"
            raise InputError(f"{self.source.path}: {where}: {reason}{_SKIP_HINT}")
        self.skipped += 1
        if number is not None:
            self._examples = sorted([*self._examples, (number, reason)])[:_EXAMPLES]

    def row_number(self, index: int) -> int:
        """The file's own number for row `index` of the current table."""
        return self.source.row_number(self._offset + index)

    def summary(self) -> str | None:
        """One phrase for the file's summary line: how many rows were skipped,
        which, and why the first was."""
        if not self.skipped:
            return None
        why = next((why for _, why in self._examples if why), "")
        if self.skipped == 1 and self._examples:
            return f"1 bad row skipped (row {self._examples[0][0]}: {why})"
        rows = ", ".join(str(n) for n, _ in self._examples)
        more = ", ..." if self.skipped > len(self._examples) else ""
        return f"{self.skipped} bad rows skipped (rows {rows}{more}; the first: {why})"

    def _refusal(self, number: int, reason: str) -> InputError:
        return InputError(f"{self.source.path}: row {number}: {reason}{_SKIP_HINT}")

    # -- checks of converted columns -------------------------------------------------

    def prices(self, values: pa.Array, column: str, only: np.ndarray | None = None) -> None:
        """Every price present, finite and (unless the policy allows otherwise)
        above zero."""
        a, missing = _floats(values)
        if self.policy.allow_nonpositive_prices:
            ok = np.isfinite(a)
        else:
            ok = (a > 0) & (a < math.inf)
        self._mark_values(~ok, a, missing, column, only, "is not positive "
                          "(--allow-nonpositive-prices allows it)")

    def sizes(
        self, values: pa.Array, column: str, only: np.ndarray | None = None,
        missing_ok: bool = False,
    ) -> None:
        """Every size present (unless `missing_ok`), finite and not negative."""
        a, missing = _floats(values)
        ok = (a >= 0) & (a < math.inf)
        if missing_ok:
            ok |= np.isnan(a)
        self._mark_values(~ok, a, missing, column, only, "is negative")

    def _mark_values(
        self, bad: np.ndarray, a: np.ndarray, missing: np.ndarray | None, column: str,
        only: np.ndarray | None, otherwise: str,
    ) -> None:
        if only is not None:
            bad &= only
        if not bad.any():
            return

        def why(i: int) -> str:
            if missing is not None and missing[i]:
                return f"column {column!r} is empty"
            value = float(a[i])
            if math.isnan(value):
                return f"column {column!r} is NaN"
            if math.isinf(value):
                return f"column {column!r} is {'-' if value < 0 else ''}infinite"
            return f"column {column!r}: {value:g} {otherwise}"

        self.mark(bad, why)


_SKIP_HINT = "; --skip-bad-rows skips such rows"


def _floats(values: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A float64 array as numpy (nulls as NaN) and its null mask (None: no nulls)."""
    if not values.null_count:
        return values.to_numpy(zero_copy_only=False), None
    missing = values.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(values, math.nan).to_numpy(zero_copy_only=False), missing


def failing(
    values: pa.Array, convert: Callable[[pa.Array], object], first_only: bool = False
) -> list[int]:
    """Positions of `values` that `convert` refuses (it raises an Arrow error
    for a whole array when any value fails), found by halving: a few dozen
    calls per bad value. `first_only` stops at the first one."""
    bad: list[int] = []

    def visit(lo: int, hi: int) -> None:
        if first_only and bad:
            return
        try:
            convert(values.slice(lo, hi - lo))
            return
        except pa.ArrowException:
            pass
        if hi - lo == 1:
            bad.append(lo)
            return
        mid = (lo + hi) // 2
        visit(lo, mid)
        visit(mid, hi)

    if len(values):
        visit(0, len(values))
    return bad


def as_mask(positions: list[int], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return mask


def without(values: pa.Array, bad: np.ndarray) -> pa.Array:
    """`values` with the rows of `bad` made null."""
    return pc.if_else(pa.array(bad), pa.scalar(None, values.type), values)


def shown(values: pa.Array, index: int, width: int = 40) -> str:
    """A cell as the user wrote it, for an error line (even if not UTF-8)."""
    cell = values[index]
    if not cell.is_valid:
        return "an empty cell"
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        raw_type = pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary()
        raw = values.slice(index, 1).view(raw_type)[0].as_py()
        text = raw.decode("utf-8", errors="replace")
    elif pa.types.is_timestamp(values.type):
        text = f"{values.slice(index, 1).cast(pa.int64())[0].as_py()} {values.type.unit}"
    else:
        try:
            text = str(cell.as_py())
        except (ValueError, OverflowError, pa.ArrowException):  # a date Python cannot hold
            text = str(cell)
    text = text if len(text) <= width else text[: width - 3] + "..."
    return repr(text)


def ts_range_text(lo: int) -> str:
    return f"{_TS_TEXT[lo]}..{_TS_TEXT[TS_MAX]}"
