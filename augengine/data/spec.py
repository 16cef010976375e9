"""``DatasetSpec``: how to load one dataset, as data (a bench config table, a TOML file, a dict).

A path string is enough for every layout that is detected from what the folder holds; a
spreadsheet or a loader option needs more, so a dataset can also be written as a table::

    data = { format = "csv", csv = "clinic/labels.csv", image_col = "file", label_col = "diagnosis",
             group_col = "patient" }
    test_data = ["../PH2Dataset", { path = "isic2020", options = { labels = "binary" } }]

or as a TOML file of the same keys passed where a path is expected (``--test-data clinic.toml``);
relative paths in such a file are relative to the file. :func:`augengine.load_dataset` accepts
all three forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from augengine.errors import ConfigError, DataError

__all__ = ["DatasetSpec", "read_spec_file"]


class DatasetSpec(BaseModel):
    """Where a dataset is and how to read it (the keyword arguments of :func:`augengine.load_dataset`)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field("demo", description="dataset folder, file, or 'demo' (with format csv: optional, the root)")
    format: str = Field("auto", description="auto, ham10000, isic2019, isic2018, isic2020, ph2, csv, folder, "
                                            "medmnist or demo")
    csv: str | None = Field(None, description="format csv: the spreadsheet (CSV) file")
    image_col: str | None = Field(None, description="format csv: column of image paths or names")
    label_col: str | list[str] | None = Field(None, description="format csv: column of class names, or one-hot columns")
    group_col: str | None = Field(None, description="format csv: column of lesion/patient ids (kept whole in a split)")
    root: str | None = Field(None, description="format csv: folder the image paths are relative to")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="format options: isic2020 labels=diagnosis|binary, unknown=class|drop; "
                                                "isic2018 part=Training,Validation,Test; csv labels=auto|as-written")
    name: str | None = Field(None, description="how reports call the set (default: the folder or file name)")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`augengine.load_dataset` (without ``path``)."""
        return {"format": self.format, "csv": self.csv, "image_col": self.image_col, "label_col": self.label_col,
                "group_col": self.group_col, "root": self.root, "options": dict(self.options) or None}

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.format in ("csv", "auto") and self.csv:
            return Path(self.csv).stem
        from augengine.naming import set_label

        return set_label(self.path)

    def relative_to(self, base: Path) -> DatasetSpec:
        """The spec with its relative paths (path, csv, root) taken relative to ``base``."""
        upd = {}
        for key in ("path", "csv", "root"):
            v = getattr(self, key)
            if v is not None and v != "demo" and not Path(v).expanduser().is_absolute():
                upd[key] = str(base / v)
        return self.model_copy(update=upd)


def spec_from(value, owner: str = "dataset") -> DatasetSpec:
    """A :class:`DatasetSpec` from a spec, a mapping, or a path (a ``.toml`` file path is read as a spec file)."""
    if isinstance(value, DatasetSpec):
        return value
    if isinstance(value, dict):
        from augengine.config import validate_config

        return validate_config(DatasetSpec, value, owner)
    p = Path(str(value)).expanduser()
    if p.suffix == ".toml" and p.is_file():
        return read_spec_file(p)
    return DatasetSpec(path=str(value))


def read_spec_file(path: str | Path) -> DatasetSpec:
    """Read a dataset spec TOML file (keys of :class:`DatasetSpec`; relative paths relative to the file)."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    spec = spec_from(data, owner=str(path))
    if "path" not in data:
        spec = spec.model_copy(update={"path": str(path.parent)})
    return spec.relative_to(path.parent.resolve())
