"""One-hot label columns (ISIC ground-truth CSVs, or a spreadsheet's ``label_col=[A, B, …]``)."""

from __future__ import annotations

from pathlib import Path

from augengine.errors import DataError

__all__ = ["onehot_label"]


def onehot_label(csv_path: Path, row_number: int, image: str, values: list[str], columns: list[str]) -> str:
    """The one column whose value is 1 among ``columns`` (values ``0``/``1``, ``0.0``/``1.0``).

    Raises:
        DataError: a value is not 0 or 1, or not exactly one column is 1 (names the file, row and image).
    """
    try:
        vals = [float(v) for v in values]
    except ValueError:
        raise DataError(f"{csv_path} row {row_number} (image {image}): one-hot fields {','.join(columns)} must be "
                        f"0.0 or 1.0; found {','.join(values)}") from None
    if any(v not in (0.0, 1.0) for v in vals):
        raise DataError(f"{csv_path} row {row_number} (image {image}): one-hot fields {','.join(columns)} must be "
                        f"0.0 or 1.0; found {','.join(values)}")
    ones = [c for c, v in zip(columns, vals) if v == 1.0]
    if len(ones) != 1:
        raise DataError(f"{csv_path} row {row_number} (image {image}): expected exactly one 1.0 among "
                        f"{','.join(columns)}; found {len(ones)}")
    return ones[0]
