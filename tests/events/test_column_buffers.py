"""The buffer-level helpers that keep pyarrow.compute out of a replay's start-up
(events.schema.int_codes, replay.runs._all_equal) give what the compute kernels
give, over random arrays with nulls and slice offsets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from events.schema import int_codes
from replay.runs import _all_equal

INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8()]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(0, 100)), max_size=80),
       type_at=st.integers(0, len(INT_TYPES) - 1),
       cut=st.tuples(st.integers(0, 40), st.integers(0, 80)),
       fill=st.integers(0, 9))
def test_int_codes_equals_fill_null(values: list[int | None], type_at: int,
                                    cut: tuple[int, int], fill: int) -> None:
    arr = pa.array(values, INT_TYPES[type_at]).slice(*cut)
    expected = pc.fill_null(arr, fill).to_numpy().astype(np.int64)
    got = int_codes(arr, fill)
    assert got.dtype == np.int64
    assert got.tolist() == expected.tolist()


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from(["SPY", "QQQ", "SP", "SPYSPY", "", None]), max_size=40),
       cut=st.tuples(st.integers(0, 20), st.integers(0, 40)), dictionary=st.booleans(),
       wanted=st.sampled_from(["SPY", "QQQ", "SP"]))
def test_all_equal_is_is_in_of_one_symbol_everywhere(names: list[str | None], cut: tuple[int, int],
                                                     dictionary: bool, wanted: str) -> None:
    col = pa.array(names, pa.string()).slice(*cut)
    if dictionary:
        col = col.dictionary_encode()
    truth = col.to_pylist() == [wanted] * len(col)
    # a dictionary may hold an entry no row uses: then the helper says False and
    # the caller takes the compute path, which is still right
    if dictionary:
        assert not _all_equal(col, wanted.encode()) or truth, (names, cut, wanted)
    else:
        assert _all_equal(col, wanted.encode()) == truth, (names, cut, wanted)
