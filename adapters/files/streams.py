"""The bytes under a CSV: zip members, gzip streams, and text made fit for Arrow.

A damaged zip member raises one error type (`DamagedArchive`) whatever zipfile
makes of it, `locate_damage` finds the byte where compressed data stops
decompressing, and `Utf8Text` hands Arrow text it can decode (its row-error
callback cannot take bytes that are not UTF-8).
"""

from __future__ import annotations

import codecs
import io
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

import pyarrow as pa

LOCATE_BYTES = 4 << 10  # read size when finding where compressed data breaks


class DamagedArchive(OSError):
    """A zip archive or one of its members cannot be read back."""


# Errors reading a file's body that mean the file is damaged or not what it
# claimed, rather than a bug of ours.
READ_ERRORS = (
    pa.ArrowException,
    OSError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    UnicodeDecodeError,
)


class ZipMember(io.RawIOBase):
    """A zip member to read, whose read errors are DamagedArchive whatever
    zipfile raises for them (zlib.error, BadZipFile, EOFError,
    NotImplementedError for a compression method it does not know, ...)."""

    def __init__(self, zf: zipfile.ZipFile, member: str) -> None:
        super().__init__()
        try:
            self._file = zf.open(member)
        except Exception as exc:  # a damaged local header, an unknown method, a bad flag
            raise DamagedArchive(one_line(exc)) from exc

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._file.read(-1 if size is None else size)
        except Exception as exc:  # the member's data is damaged: never a bug of ours
            raise DamagedArchive(one_line(exc)) from exc

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class Utf8Text(io.RawIOBase):
    """A CSV's bytes with every sequence that is not UTF-8 replaced by U+FFFD.

    Arrow hands a malformed row to our callback as text it decodes strictly:
    undecodable bytes would make it print an ignored exception and stop. Blocks
    of plain ASCII (market data nearly always) pass through untouched."""

    def __init__(self, raw: BinaryIO | pa.NativeFile) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._spill = b""  # replaced text beyond what the last read asked for
        self.replaced = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._spill:
            data = self._spill
        else:
            data = self._raw.read(-1 if size is None else size)
            pending = self._decoder.getstate()[0]
            if not pending and data.isascii():
                return data
            text = self._decoder.decode(data, final=not data)
            if "\ufffd" in text:
                self.replaced = True
            data = text.encode()
        # Arrow copies what read() returns into a buffer of `size` bytes.
        if size is not None and 0 <= size < len(data):
            data, self._spill = data[:size], data[size:]
        else:
            self._spill = b""
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def locate_damage(opener: Callable[[], BinaryIO | pa.NativeFile]) -> tuple[int, int] | None:
    """Decompress again in small reads: (bytes, newlines) read before the
    first error, or None if it all reads this time."""
    offset = lines = 0
    try:
        with opener() as f:
            while chunk := f.read(LOCATE_BYTES):
                offset += len(chunk)
                lines += chunk.count(b"\n")
    except READ_ERRORS:
        return offset, lines
    return None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
