"""Damage to a file's bytes, as a disk, a crash or a careless copy does it: truncate,
flip bytes, append or insert garbage, delete. Each `Damage` says where the file first
differs from the original, so a test can tell what lay before the damage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

KINDS = ("truncate", "flip", "append", "insert")


@dataclass(frozen=True)
class Damage:
    kind: str  # truncate | flip | append | insert | delete
    offset: int = 0  # where the file first differs (truncate: its new length)
    data: bytes = b""  # flip: the XOR masks; append, insert: the garbage

    def apply(self, blob: bytes) -> bytes:
        if self.kind == "truncate":
            return blob[: self.offset]
        if self.kind == "flip":
            out = bytearray(blob)
            for i, mask in enumerate(self.data):
                if self.offset + i < len(out):
                    out[self.offset + i] ^= mask
            return bytes(out)
        if self.kind == "append":
            return blob + self.data
        if self.kind == "insert":
            return blob[: self.offset] + self.data + blob[self.offset :]
        raise ValueError(f"{self.kind}: not a byte damage")

    def to_file(self, path: Path) -> None:
        """Damage the file at `path` in place (delete removes it)."""
        if self.kind == "delete":
            path.unlink()
            return
        path.write_bytes(self.apply(path.read_bytes()))

    def __str__(self) -> str:
        return f"{self.kind}@{self.offset}" + (f" {self.data[:16].hex()}" if self.data else "")


def damages(size: int, kinds: tuple[str, ...] = KINDS, *, start: int = 0
            ) -> st.SearchStrategy[Damage]:
    """Damage to a file of `size` bytes that changes it, at or after `start`."""
    assert size > start >= 0, (size, start)
    at = st.integers(start, size - 1)
    options: list[st.SearchStrategy[Damage]] = []
    if "truncate" in kinds:
        options.append(at.map(lambda o: Damage("truncate", o)))
    if "flip" in kinds:
        masks = st.binary(min_size=1, max_size=4).filter(lambda b: b[0] != 0)
        options.append(st.builds(lambda o, m: Damage("flip", o, m), at, masks))
    if "append" in kinds:
        options.append(st.binary(min_size=1, max_size=64).map(
            lambda g: Damage("append", size, g)))
    if "insert" in kinds:
        options.append(st.builds(lambda o, g: Damage("insert", o, g), at,
                                 st.binary(min_size=1, max_size=16)))
    return st.one_of(options)


def tail_damages(size: int, tail: int, kinds: tuple[str, ...] = ("truncate", "flip")
                 ) -> st.SearchStrategy[Damage]:
    """Damage within the last `tail` bytes (a Parquet footer, say)."""
    return damages(size, kinds, start=max(0, size - tail))
