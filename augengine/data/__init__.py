"""The data layer (issue 3 fills this in): datasets on disk → ImageTable → splits → decoded cache.

Placeholder signatures only, so that the package imports while the data layer is being written.
"""

from __future__ import annotations

from augengine.errors import DataError


def load_dataset(path="demo", *, format="auto"):
    raise DataError("the data layer is not implemented yet")


def split(table, fractions=(0.8, 0.1, 0.1), group_by="auto", seed=0):
    raise DataError("the data layer is not implemented yet")


def load_split(path, table):
    raise DataError("the data layer is not implemented yet")


def combine(real, synthetic=(), amount=None, seed=0):
    raise DataError("the data layer is not implemented yet")
