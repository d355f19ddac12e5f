"""The suite's versioned bitstream container.

Layout (all integers unsigned LEB128 varints unless stated):

    magic  b"\\xdb\\x5c"        2 bytes
    version                    1 byte  (CONTAINER_VERSION)
    method tag                 2 bytes (CRC-32 of the method name, low 16 bits, big endian)
    rate-point index           varint  (index into the codec's rate_points())
    ndim, dims...              varints (shape of the coded tensor, e.g. 3, H, W)
    n_streams, len_1..len_n    varints
    stream_1 .. stream_n       raw bytes, concatenated

The header costs about 12-20 bytes; results report it (container bytes) next to the payload bytes. Any
truncated, padded, empty or foreign input raises BitstreamError with a message saying what was wrong."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from benchmark.errors import BitstreamError

MAGIC = b"\xdb\x5c"
CONTAINER_VERSION = 1
_MAX_DIM = 1 << 24


def method_tag(method: str) -> bytes:
    return (zlib.crc32(method.encode("utf-8")) & 0xFFFF).to_bytes(2, "big")


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if pos >= len(data):
            raise BitstreamError(f"bitstream truncated while reading {what} (at byte {pos} of {len(data)})")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise BitstreamError(f"corrupt bitstream: varint for {what} is too long")


@dataclass
class Container:
    method: str
    point: int
    shape: tuple[int, ...]
    streams: list[bytes] = field(default_factory=list)

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.streams)

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out.append(CONTAINER_VERSION)
        out += method_tag(self.method)
        _put_varint(out, self.point)
        _put_varint(out, len(self.shape))
        for d in self.shape:
            _put_varint(out, int(d))
        _put_varint(out, len(self.streams))
        for s in self.streams:
            _put_varint(out, len(s))
        for s in self.streams:
            out += s
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, method: str) -> Container:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BitstreamError(f"expected bytes for {method}, got {type(data).__name__}")
        data = bytes(data)
        if len(data) == 0:
            raise BitstreamError(f"empty bitstream given to {method}: nothing to decode")
        if data[:2] != MAGIC:
            raise BitstreamError(
                f"not a dsc-bench bitstream (bad magic {data[:2].hex() or 'none'}, expected {MAGIC.hex()}); "
                f"was it produced by `{method}.compress`?"
            )
        if len(data) < 5:
            raise BitstreamError(f"bitstream truncated: {len(data)} bytes, shorter than the 5-byte container header")
        version = data[2]
        if version != CONTAINER_VERSION:
            raise BitstreamError(f"unsupported container version {version} (this suite reads version {CONTAINER_VERSION})")
        tag = data[3:5]
        if tag != method_tag(method):
            raise BitstreamError(
                f"bitstream was produced by another method (tag {tag.hex()}), not by {method!r} "
                f"(tag {method_tag(method).hex()}); decode it with the codec that made it"
            )
        pos = 5
        point, pos = _get_varint(data, pos, "rate-point index")
        ndim, pos = _get_varint(data, pos, "number of dimensions")
        if ndim > 8:
            raise BitstreamError(f"corrupt bitstream: {ndim} dimensions")
        shape = []
        for i in range(ndim):
            d, pos = _get_varint(data, pos, f"dimension {i}")
            if d > _MAX_DIM:
                raise BitstreamError(f"corrupt bitstream: dimension {i} = {d}")
            shape.append(d)
        from benchmark.safety.limits import shape_problem

        why = shape_problem(shape)  # before any decoder allocates for the claimed size
        if why:
            raise BitstreamError(f"{method}: refusing to decode: {why}")
        n, pos = _get_varint(data, pos, "stream count")
        if n > 1024:
            raise BitstreamError(f"corrupt bitstream: {n} streams")
        lengths = []
        for i in range(n):
            ln, pos = _get_varint(data, pos, f"length of stream {i}")
            lengths.append(ln)
        need = pos + sum(lengths)
        if len(data) < need:
            raise BitstreamError(f"bitstream truncated: header announces {need} bytes, got {len(data)}")
        if len(data) > need:
            raise BitstreamError(f"bitstream has {len(data) - need} trailing bytes after its last stream (corrupt or concatenated input)")
        streams = []
        for ln in lengths:
            streams.append(data[pos : pos + ln])
            pos += ln
        return cls(method, point, tuple(shape), streams)
