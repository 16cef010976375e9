"""Label words and codes as datasets write them → the ISIC 2019 class names.

Used by the spreadsheet loader (``labels="auto"``): when *every* label of a spreadsheet is a
known word, labels are mapped onto ISIC names (and the mapping is stated by ``data inspect``);
otherwise they are kept as written, so a clinic's own class names are never half-translated.
"""

from __future__ import annotations

from augengine.data.table import ISIC_CLASSES

__all__ = ["ISIC_SYNONYMS", "to_isic", "order_classes"]

# lower-cased label → ISIC 2019 class name
ISIC_SYNONYMS: dict[str, str] = {
    **{c.lower(): c for c in ISIC_CLASSES},
    "unk": "UNK",
    # HAM10000 dx codes and ISIC 2018 Task 3 column names
    "akiec": "AK",
    # words
    "melanoma": "MEL",
    "nevus": "NV",
    "naevus": "NV",
    "melanocytic nevus": "NV",
    "melanocytic nevi": "NV",
    "basal cell carcinoma": "BCC",
    "actinic keratosis": "AK",
    "actinic keratoses": "AK",
    "benign keratosis": "BKL",
    "benign keratosis-like lesion": "BKL",
    "benign keratosis-like lesions": "BKL",
    "seborrheic keratosis": "BKL",
    "dermatofibroma": "DF",
    "vascular lesion": "VASC",
    "vascular lesions": "VASC",
    "squamous cell carcinoma": "SCC",
}


def to_isic(label: str) -> str | None:
    """The ISIC class name of ``label`` (case-insensitive), or ``None`` when it is not a known word."""
    return ISIC_SYNONYMS.get(" ".join(label.strip().lower().split()))


def order_classes(names) -> list[str]:
    """ISIC classes in ISIC order first, then the others in sorted order (``UNK`` last)."""
    names = set(names)
    isic = [c for c in ISIC_CLASSES if c in names]
    rest = sorted(n for n in names if n not in ISIC_CLASSES and n != "UNK")
    return isic + rest + (["UNK"] if "UNK" in names else [])
