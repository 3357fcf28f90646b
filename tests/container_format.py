"""The annx container format, written independently of the library from the layout
documented in cpp/include/annx/io/container.h (64-byte header, 64-byte-aligned sections,
32-byte TOC entries, CRC-32C everywhere): a small reader/writer that tests use to damage
files precisely and to build well-formed files with hostile contents."""

from __future__ import annotations

import struct
from typing import Any

HEADER = struct.Struct("<8sIIQQQII12sI")  # 64 bytes
TOC_ENTRY = struct.Struct("<8sQQII")  # 32 bytes
MAGIC = b"ANNXIDX\0"
assert HEADER.size == 64 and TOC_ENTRY.size == 32


# ------------------------------------------------------------------------ CRC-32C
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ----------------------------------------------------------- container read / write
def parse(data: bytes) -> dict[str, Any]:
    """Header fields and sections of a well-formed annx file."""
    (magic, major, minor, flags, file_size, toc, count, toc_crc, reserved, hcrc) = (
        HEADER.unpack_from(data, 0)
    )
    assert magic == MAGIC
    assert hcrc == crc32c(data[:60])
    assert toc_crc == crc32c(data[toc : toc + 32 * count])
    sections = []
    for i in range(count):
        tag, off, length, crc, _ = TOC_ENTRY.unpack_from(data, toc + 32 * i)
        assert off % 64 == 0 and crc == crc32c(data[off : off + length])
        sections.append((tag.rstrip(b"\0").decode(), off, length))
    return {
        "major": major,
        "minor": minor,
        "flags": flags,
        "file_size": file_size,
        "toc": toc,
        "count": count,
        "sections": sections,
    }


def section_bytes(data: bytes) -> list[tuple[str, bytes]]:
    return [(tag, data[off : off + n]) for tag, off, n in parse(data)["sections"]]


def build_container(
    sections: list[tuple[str, bytes]], major: int = 1, minor: int = 0, flags: int = 0
) -> bytes:
    """Write sections as an annx container (the same layout annx writes)."""
    out = bytearray(64)
    entries = []
    for tag, payload in sections:
        off = len(out)
        out += payload
        out += b"\0" * (-len(out) % 64)
        entries.append(TOC_ENTRY.pack(tag.encode(), off, len(payload), crc32c(payload), 0))
    toc = len(out)
    toc_bytes = b"".join(entries)
    out += toc_bytes
    head = HEADER.pack(
        MAGIC, major, minor, flags, len(out), toc, len(entries), crc32c(toc_bytes), b"\0" * 12, 0
    )
    out[:64] = head[:60] + struct.pack("<I", crc32c(head[:60]))
    return bytes(out)


def manifest_of(data: bytes) -> list[tuple[str, str]]:
    text = dict(section_bytes(data))["MANIFEST"].decode()
    return [tuple(line.split("=", 1)) for line in text.splitlines()]  # type: ignore[misc]


def with_manifest(data: bytes, **changes: Any) -> bytes:
    """Rebuild a valid container with manifest keys changed (None deletes a key)."""
    kv = dict(manifest_of(data))
    for key, value in changes.items():
        if value is None:
            kv.pop(key, None)
        else:
            kv[key] = str(value)
    text = "".join(f"{k}={v}\n" for k, v in kv.items()).encode()
    secs = [(t, text if t == "MANIFEST" else b) for t, b in section_bytes(data)]
    return build_container(secs)


def with_section(data: bytes, tag: str, payload: bytes | None) -> bytes:
    secs = [(t, b) for t, b in section_bytes(data) if t != tag]
    if payload is not None:
        secs.append((tag, payload))
    return build_container(secs)
