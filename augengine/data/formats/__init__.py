"""Loaders for public dermoscopy sets in the layouts their sites ship, and for any labelled spreadsheet.

One module per format; each exposes ``detect(path) -> bool`` (does this folder hold the format?)
and ``load(path, **options) -> ImageTable``. :func:`augengine.data.table.load_dataset` picks
among them; the older loaders (HAM10000, ISIC 2019, class folders, MedMNIST, demo) live in
:mod:`augengine.data.table`.

* :mod:`~augengine.data.formats.isic2018`: ISIC 2018 Task 3 ground-truth CSVs beside their
  ``_Input`` folders.
* :mod:`~augengine.data.formats.isic2020`: ISIC 2020 ``train.csv`` (patient ids) with
  ``train/`` or ``jpeg/train/``.
* :mod:`~augengine.data.formats.ph2`: PH2 (``PH2_dataset.txt`` or ``.xlsx``,
  ``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp``).
* :mod:`~augengine.data.formats.spreadsheet`: any CSV with named image / label / group columns.
* :mod:`~augengine.data.formats.vocabulary`: label words and codes → ISIC class names.
* :mod:`~augengine.data.formats.hints`: a CSV beside a one-class folder set (a likely misread).
"""
