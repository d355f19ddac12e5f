"""The per-image CSV a result names: its columns, where it may lie (a bare ``*.csv`` name in the result's own folder,
never a path or a symbolic link), how large it may be, and its rows read as typed values. Every failure is a
`Problem` naming the field; nothing here raises on a hostile file."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The columns of the per-image CSV, in the order the runner writes them (benchmark.evaluation.runner imports them from here).
CSV_FIELDS = [
    "image", "source", "rate_point", "bytes", "payload_bytes", "bpp", "bpp_payload", "bpp_estimated",
    "mse", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s", "height", "width",
    "sha256",  # of the whole bitstream (container included); last, so partial CSVs written without it still read
]


MAX_CSV_BYTES = 256 << 20  # the largest split (MNIST: 10k images x 10 sources x 8 points) writes well under this


INT_COLUMNS = ("source", "bytes", "payload_bytes", "height", "width")


REQUIRED_FLOATS = ("bpp", "bpp_payload", "mse", "psnr", "encode_s", "decode_s")


OPTIONAL_FLOATS = ("bpp_estimated", "ms_ssim", "ms_ssim_db")


@dataclass(frozen=True)
class Problem:
    """One disagreement, naming the field (a JSON path, or `per_image_csv[line N].column`)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"field {self.field}: {self.message}"


def csv_name_problem(name: Any, json_name: str = "") -> str | None:
    """Why `name` cannot be a result's `per_image_csv` (None when it can): a bare `*.csv` file name."""
    if not isinstance(name, str) or not name:
        return "the result names no per-image CSV; a result is checked against the CSV `bench run` writes beside it"
    if "/" in name or "\\" in name or "\0" in name or name in (".", "..") or name != name.strip():
        return (f"{name!r:.80} is not a bare file name; the CSV must lie in the result's own folder, named like "
                "`<method>[.variant].csv`")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        return f"a file name of {len(name)} characters; at most 255 bytes"
    if not name.endswith(".csv"):
        return f"{name!r:.80} does not end in .csv; the per-image CSV is a .csv file beside the result"
    if name == json_name:
        return f"{name!r:.80} names the result file itself"
    return None


def locate_csv(result: dict[str, Any], json_path: Path) -> tuple[Path | None, Problem | None]:
    """The per-image CSV a result names, resolved only inside the result's own folder and never through a link."""
    json_path = Path(json_path)
    name = result.get("per_image_csv")
    why = csv_name_problem(name, json_path.name)
    if why:
        return None, Problem("per_image_csv", why + ("" if name else "; rerun, or copy the CSV beside the JSON and "
                                                     "name it in `per_image_csv`"))
    path = json_path.parent / name
    try:
        link, exists = path.is_symlink(), path.exists()
    except OSError as exc:
        return None, Problem("per_image_csv", f"cannot look up {name!r}: {exc.strerror or exc}")
    if link:
        return None, Problem("per_image_csv", f"{name!r} is a symbolic link; the CSV must be a regular file in "
                             "the result's folder (copy the file, not a link to it)")
    if not exists:
        return None, Problem("per_image_csv", f"{name!r} not found beside {json_path.name}: a result is accepted "
                             "only with the per-image CSV `bench run` wrote beside it; copy it there")
    return path, None


def read_csv_bytes(path: Path, max_bytes: int = MAX_CSV_BYTES) -> tuple[bytes | None, Problem | None]:
    """The bytes of a CSV that must be a regular file of at most `max_bytes` (never a link, FIFO or device)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return None, Problem("per_image_csv", f"cannot open {path.name!r} ({exc.strerror or exc}); it must be a "
                             "regular, readable file beside the result, not a link")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, Problem("per_image_csv", f"{path.name!r} is not a regular file")
        if st.st_size > max_bytes:
            return None, Problem("per_image_csv", f"{path.name!r} holds {st.st_size} bytes, more than the "
                                 f"{max_bytes} a per-image CSV may hold")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return None, Problem("per_image_csv", f"cannot read {path.name!r}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return None, Problem("per_image_csv", f"{path.name!r} grew past {max_bytes} bytes while it was read")
    return data, None


def cell_number(text: str, kind: type) -> Any:
    """A numeric cell: None when empty (or "None"), else `kind(text)` (ValueError when it does not parse)."""
    if text in ("", "None"):
        return None
    return kind(text)


def parse_row(rec: dict[str, str]) -> dict[str, Any]:
    """Typed values of one CSV row; ValueError names the column that does not parse."""
    row: dict[str, Any] = {"image": rec["image"], "rate_point": rec["rate_point"], "sha256": rec.get("sha256") or None}
    for key in INT_COLUMNS + REQUIRED_FLOATS + OPTIONAL_FLOATS:
        kind = int if key in INT_COLUMNS else float
        try:
            row[key] = cell_number(rec[key].strip(), kind)
        except (ValueError, OverflowError):
            raise ValueError(f"{key}: {rec[key]!r:.40} is not {'an integer' if kind is int else 'a number'}") from None
        if row[key] is None and key not in OPTIONAL_FLOATS:
            raise ValueError(f"{key}: empty, but every row has one")
    return row
