import pytest

from benchmark.contract.container import Container, MAGIC
from benchmark.errors import BitstreamError


def test_round_trip_and_header_size():
    c = Container("balle2018", 3, (3, 192, 368), [b"abc" * 100, b"z"])
    data = c.to_bytes()
    back = Container.from_bytes(data, "balle2018")
    assert back.point == 3 and back.shape == (3, 192, 368) and back.streams == [b"abc" * 100, b"z"]
    assert back.payload_bytes == 301
    assert len(data) - back.payload_bytes <= 20  # compact header


@pytest.mark.parametrize("cut", [0, 1, 4, 7, 12, -1])
def test_truncated_is_rejected(cut):
    data = Container("jpeg", 0, (3, 8, 8), [b"x" * 50]).to_bytes()
    with pytest.raises(BitstreamError):
        Container.from_bytes(data[:cut], "jpeg")


def test_foreign_empty_trailing():
    data = Container("jpeg", 0, (3, 8, 8), [b"x" * 5]).to_bytes()
    with pytest.raises(BitstreamError, match="another method"):
        Container.from_bytes(data, "webp")
    with pytest.raises(BitstreamError, match="empty"):
        Container.from_bytes(b"", "jpeg")
    with pytest.raises(BitstreamError, match="magic"):
        Container.from_bytes(b"\xff\xd8\xff\xe0" + b"0" * 20, "jpeg")
    with pytest.raises(BitstreamError, match="trailing"):
        Container.from_bytes(data + b"\x00", "jpeg")
    bad_version = data[:2] + bytes([99]) + data[3:]
    with pytest.raises(BitstreamError, match="version"):
        Container.from_bytes(bad_version, "jpeg")
    assert data.startswith(MAGIC)


def _crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) bit by bit: an implementation apart from zlib's."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_method_tag_is_16_bits_of_crc32_and_tells_every_registered_method_apart():
    from benchmark.contract.container import method_tag
    from benchmark.contract.registry import METHODS

    assert _crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
    data = Container("balle2018", 0, (3, 8, 8), [b"x"]).to_bytes()
    assert data[3:5] == (_crc32(b"balle2018") & 0xFFFF).to_bytes(2, "big")  # bytes 3-4 of the header
    names = METHODS.names()
    tags = {n: method_tag(n) for n in names}
    assert all(len(t) == 2 and t == (_crc32(n.encode()) & 0xFFFF).to_bytes(2, "big") for n, t in tags.items())
    clashes = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if tags[a] == tags[b]]
    assert not clashes, f"methods whose bitstreams could not be told apart: {clashes}"
    for a, b in ((names[0], names[1]), ("jpeg", "webp")):  # a foreign stream is refused, whichever pair
        with pytest.raises(BitstreamError, match="another method"):
            Container.from_bytes(Container(a, 0, (3, 8, 8), [b"x"]).to_bytes(), b)
