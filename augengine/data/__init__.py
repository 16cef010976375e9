"""The data layer: datasets on disk → :class:`ImageTable` → splits → decoded cache → ImageSets.

::

    from augengine import data
    table = data.load_dataset("demo")                    # or a HAM10000 / ISIC 2019/2018/2020 / PH2 / folder / .npz path
    clinic = data.load_dataset("clinic/", csv="export.csv", image_col="file", label_col="dx", group_col="patient")
    sp = data.split(table, (0.8, 0.1, 0.1), group_by="auto", seed=0)
    x = sp.train.images(64)                              # uint8 N×64×64×3 from the HDF5 cache
    both = data.combine(sp.train, [synthetic_set], amount=0.5, seed=0)
    batch = data.augment(x[:32], seed=0)                 # kornia flips / rot90 / colour jitter

Modules: :mod:`~augengine.data.table` (ImageTable, loaders), :mod:`~augengine.data.formats` (ISIC 2018,
ISIC 2020, PH2, any spreadsheet), :mod:`~augengine.data.spec` (DatasetSpec), :mod:`~augengine.data.splits`,
:mod:`~augengine.data.cache` (decoded HDF5 cache), :mod:`~augengine.data.combine`,
:mod:`~augengine.data.augment`, :mod:`~augengine.data.inspect`, :mod:`~augengine.data.resample`
(the resampling control).
"""

from __future__ import annotations

from augengine.data.augment import Augment, AugmentConfig, augment
from augengine.data.cache import DataWarning, cache_dir, cache_path, decode_image, decoded_images
from augengine.data.combine import CombinedImageSet, combine
from augengine.data.resample import class_counts_in, resample_like
from augengine.data.spec import DatasetSpec
from augengine.data.splits import Split, allocate, default_split, load_split, parse_fractions, split
from augengine.data.table import (
    HAM_DX_TO_ISIC,
    ISIC_CLASSES,
    ImageTable,
    Problem,
    TableImageSet,
    demo_path,
    detect_format,
    load_dataset,
    scan_dataset,
)

__all__ = [
    "Augment",
    "AugmentConfig",
    "CombinedImageSet",
    "DataWarning",
    "DatasetSpec",
    "HAM_DX_TO_ISIC",
    "ISIC_CLASSES",
    "ImageTable",
    "Problem",
    "Split",
    "TableImageSet",
    "allocate",
    "augment",
    "cache_dir",
    "cache_path",
    "combine",
    "decode_image",
    "decoded_images",
    "default_split",
    "demo_path",
    "detect_format",
    "inspect_dataset",
    "load_dataset",
    "load_split",
    "parse_fractions",
    "resample_like",
    "class_counts_in",
    "scan_dataset",
    "split",
]


def inspect_dataset(path="demo", *, format="auto", progress=True, **load_args):
    """See :func:`augengine.data.inspect.inspect_dataset`."""
    from augengine.data.inspect import inspect_dataset as _inspect

    return _inspect(path, format=format, progress=progress, **load_args)
