import pytest

from benchmark.container import Container, MAGIC
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
