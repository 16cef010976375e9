"""``augengine data inspect``: what a dataset holds and every problem in it.

Reads every image once (2 processes for file-based sets): byte hash (for duplicates), decode
check (unreadable / truncated / not an image), size and mode (grayscale, RGBA, palette, CMYK,
16-bit are reported as conversions). Problems have a severity: ``error`` makes the set unusable
(``usable`` is false, the CLI exits non-zero), ``warning`` is handled.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from augengine.data.cache import _to_rgb8, decode_image
from augengine.data.table import Problem, scan_dataset
from augengine.errors import DataError

__all__ = ["inspect_dataset", "format_report", "summarize_problems"]

_CHUNK = 128


def _inspect_one(name: str, src) -> tuple[str | None, tuple[int, int] | None, str | None, str | None, str | None]:
    """(sha1 of bytes, (w, h), mode, conversion kind, error message)."""
    try:
        if isinstance(src, np.ndarray):
            digest = hashlib.sha1(np.ascontiguousarray(src).tobytes()).hexdigest()
            a = src[..., 0] if src.ndim == 3 and src.shape[-1] == 1 else src
            img = Image.fromarray(a)
            _, kind = _to_rgb8(img)
            return digest, img.size, img.mode, kind, None
        data = src if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if not data:
            return digest, None, None, None, f"{name}: empty file (0 bytes); expected an image"
        _, kind, size, mode = decode_image(bytes(data), 8, name=name)
        return digest, size, mode, kind, None
    except DataError as e:
        return None, None, None, None, str(e)
    except OSError as e:
        return None, None, None, None, f"{name}: cannot read ({e.strerror or e}); expected a readable image file"


def _inspect_chunk(items):
    return [_inspect_one(name, src) for name, src in items]


def inspect_dataset(path="demo", *, format: str = "auto", progress: bool = True, **load_args) -> dict[str, Any]:
    """Inspect a dataset; returns a JSON-ready report.

    Args:
        path, format, load_args: as :func:`augengine.load_dataset` (``csv``, ``image_col``,
            ``label_col``, ``group_col``, ``root``, ``options``).
        progress: show a progress bar.

    Returns:
        dict with ``path``, ``format``, ``root``, ``n_images``, ``class_counts`` (class → images),
        ``labels_from`` (where labels come from and how they were mapped), ``label_mapping``
        (list of {``from`` (as written), ``to`` (class), ``images``}: every mapping, identities
        included), ``source_labels`` (class → label as written, when they differ), ``n_lesions``
        (distinct groups, or None), ``group_kind`` (``lesion``/``patient``/``group``), ``groups_from``,
        ``notes``, ``sizes`` ("WxH" → images), ``modes`` (PIL mode → images), ``problem_summary``
        (one entry per kind: {kind, severity, count, text}, errors first), ``problems`` (list of
        {kind, severity, file, message}), ``n_errors``, ``n_warnings``, ``usable``, ``fingerprint``.

    Raises:
        DataError: the dataset cannot be read at all (missing folder, wrong CSV header, …).
    """
    from tqdm.auto import tqdm

    table = scan_dataset(path, format=format, **load_args)
    problems: list[Problem] = list(table.problems)
    bad_files = {p.file for p in problems if p.kind in ("missing", "empty_file")}
    n = len(table)
    names = [table.paths[i] if table._embedded is None else table.ids[i] for i in range(n)]
    todo = [i for i in range(n) if names[i] not in bad_files and table.sources[i] != "missing"]
    items = [(str(table.root / names[i]) if table._embedded is None else names[i], table.source(i)) for i in todo]
    chunks = [items[k: k + _CHUNK] for k in range(0, len(items), _CHUNK)]
    results = []
    with tqdm(total=len(items), desc=f"inspecting {table.format}", unit="img", disable=not progress, leave=False) as bar:
        if table._embedded is None and len(items) >= 512 and (os.cpu_count() or 1) > 1:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=ctx) as ex:
                for r in ex.map(_inspect_chunk, chunks):
                    results += r
                    bar.update(len(r))
        else:
            for ch in chunks:
                results += _inspect_chunk(ch)
                bar.update(len(ch))
    sizes: Counter = Counter()
    modes: Counter = Counter()
    converted: dict[str, list[str]] = defaultdict(list)
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, (digest, size, mode, kind, err) in zip(todo, results):
        if err is not None:
            kind_name = "truncated" if "truncated" in err else "unreadable"
            problems.append(Problem(kind_name, "error", names[i], err))
            continue
        sizes[f"{size[0]}x{size[1]}"] += 1
        modes[mode] += 1
        if kind:
            converted[kind].append(names[i])
        by_hash[digest].append(i)
    if converted:
        total = sum(len(v) for v in converted.values())
        detail = ", ".join(f"{k} {len(v)}" for k, v in sorted(converted.items()))
        files = [f for v in converted.values() for f in v]
        shown = ", ".join(files[:5]) + (f", … ({len(files) - 5} more)" if len(files) > 5 else "")
        problems.append(Problem("converted", "warning", files[0],
                                f"{table.root}: {total} images are not 8-bit RGB ({detail}); they are converted "
                                f"to 8-bit RGB when decoded: {shown}"))
    for digest, rows in by_hash.items():
        if len(rows) < 2:
            continue
        classes = {table.class_names[table.labels[r]] for r in rows}
        listing = ", ".join(f"{names[r]} ({table.class_names[table.labels[r]]}"
                            + (f", lesion {table.groups[r]})" if table.groups is not None else ")") for r in rows)
        if table.groups is not None and len({table.groups[r] for r in rows}) > 1:
            listing += " — different lesions, so a lesion-grouped split may put copies in two splits"
        if len(classes) > 1:
            problems.append(Problem("duplicate_across_classes", "warning", names[rows[0]],
                                    f"byte-identical files filed under different classes {sorted(classes)}: {listing}"))
        else:
            problems.append(Problem("duplicate", "warning", names[rows[0]],
                                    f"byte-identical files (same class {classes.pop()}): {listing}"))
    source_labels: dict[str, list[str]] = defaultdict(list)
    for lab, raw in zip(table.labels.tolist(), table.raw_labels):
        cn = table.class_names[lab]
        if raw != cn and raw not in source_labels[cn]:
            source_labels[cn].append(raw)
    order = {"error": 0, "warning": 1}
    problems.sort(key=lambda p: (order[p.severity], p.kind, p.file))
    n_err = sum(p.severity == "error" for p in problems)
    counts = table.class_counts()
    pairs = Counter(zip(table.raw_labels, (table.class_names[v] for v in table.labels.tolist())))
    mapping = [{"from": raw, "to": cls, "images": k}
               for (raw, cls), k in sorted(pairs.items(), key=lambda kv: (table.class_names.index(kv[0][1]), kv[0][0]))]
    return {
        "path": str(path),
        "format": table.format,
        "root": str(table.root),
        "n_images": n,
        "class_counts": counts,
        "labels_from": table.meta.get("labels_from"),
        "label_mapping": mapping,
        "source_labels": {k: v for k, v in source_labels.items() if len(v) <= 3},
        "n_lesions": table.num_groups,
        "group_kind": table.meta.get("group_kind", "lesion") if table.groups is not None else None,
        "groups_from": table.meta.get("groups_from"),
        "notes": list(table.meta.get("notes", [])),
        "sizes": dict(sizes.most_common()),
        "modes": dict(modes.most_common()),
        "problem_summary": summarize_problems(problems),
        "problems": [p.as_dict() for p in problems],
        "n_errors": n_err,
        "n_warnings": len(problems) - n_err,
        "usable": n_err == 0,
        "fingerprint": table.fingerprint,
    }


_KIND_TEXT = {
    "missing": ("listed image missing", "listed images missing"),
    "empty_file": ("empty file", "empty files"),
    "unreadable": ("unreadable file", "unreadable files"),
    "truncated": ("truncated file", "truncated files"),
    "empty_class": ("empty class", "empty classes"),
    "bad_row": ("bad row", "bad rows"),
    "unlisted": ("note on images present but not listed", "notes on images present but not listed"),
    "converted": ("note on images converted to 8-bit RGB", "notes on images converted to 8-bit RGB"),
    "csv_beside_folder": ("CSV beside the folder names its images (labels probably there)",
                          "CSVs beside the folder name its images (labels probably there)"),
    "unknown_diagnosis": ("note on diagnosis 'unknown' (class UNK)", "notes on diagnosis 'unknown'"),
    "label_conflict": ("note on rows whose labels disagree", "notes on rows whose labels disagree"),
    "no_groups": ("no lesion ids", "no lesion ids"),
    "other_format": ("other dataset layout in the folder, not loaded", "other dataset layouts in the folder, not loaded"),
    "unlabelled_part": ("image folder without ground truth", "image folders without ground truth"),
    "single_class": ("single class", "single class"),
}


def summarize_problems(problems) -> list[dict[str, Any]]:
    """Problems counted by kind, errors first: [{kind, severity, count, text}] (duplicates as one entry).

    Byte-identical duplicates are one entry, ``"141 duplicate groups: 137 across classes, 4 within a
    class"``; every other kind is ``"<count> <what>"``.
    """
    rows = [p.as_dict() if isinstance(p, Problem) else dict(p) for p in problems]
    out = []
    dup_across = sum(r["kind"] == "duplicate_across_classes" for r in rows)
    dup_within = sum(r["kind"] == "duplicate" for r in rows)
    by_kind: dict[tuple[str, str], int] = Counter((r["severity"], r["kind"]) for r in rows
                                                  if r["kind"] not in ("duplicate", "duplicate_across_classes"))
    for (sev, kind), k in sorted(by_kind.items(), key=lambda kv: (kv[0][0] != "error", -kv[1], kv[0][1])):
        one, many = _KIND_TEXT.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
        out.append({"kind": kind, "severity": sev, "count": k, "text": f"{k:,} {one if k == 1 else many}"})
    if dup_across or dup_within:
        n = dup_across + dup_within
        out.append({"kind": "duplicate", "severity": "warning", "count": n,
                    "text": f"{n:,} duplicate group{'s' if n != 1 else ''} (byte-identical files): "
                            f"{dup_across:,} across classes, {dup_within:,} within a class"})
    return out


def format_report(rep: dict[str, Any], max_problems: int = 50) -> str:
    """Human-readable text of an :func:`inspect_dataset` report."""
    kind = rep.get("group_kind") or "lesion"
    word = {"lesion": "lesions", "patient": "patients", "group": "groups"}.get(kind, kind + "s")
    lines = [f"dataset   {rep['path']}  (format {rep['format']}, root {rep['root']})",
             f"images    {rep['n_images']:,}",
             f"{word:<9} {rep['n_lesions']:,}" + (f"  ({rep['groups_from']})" if rep.get("groups_from") else "")
             if rep["n_lesions"] is not None else "lesions   unknown (no lesion ids)"]
    if rep.get("labels_from"):
        lines.append(f"labels    {rep['labels_from']}")
    lines.append("classes")
    width = max([len(c) for c in rep["class_counts"]] + [5])
    by_class: dict[str, list] = {}
    for m in rep.get("label_mapping", []):
        by_class.setdefault(m["to"], []).append(m)
    for c, k in sorted(rep["class_counts"].items(), key=lambda kv: -kv[1]):
        ms = by_class.get(c, [])
        if len(ms) == 1 and ms[0]["from"] == c:
            how = ""
        elif ms:
            how = "   ← " + ", ".join(f"{m['from']} ({m['images']:,})" if len(ms) > 1 else m["from"] for m in ms)
        else:
            raw = rep.get("source_labels", {}).get(c)
            how = f"   ({', '.join(raw)})" if raw else ""
        lines.append(f"  {c:<{width}} {k:>7,}{how}")
    for note in rep.get("notes", []):
        lines.append(f"note      {note}")
    lines.append("sizes     " + ", ".join(f"{s}: {k:,}" for s, k in list(rep["sizes"].items())[:6])
                 + (f", … ({len(rep['sizes']) - 6} more)" if len(rep["sizes"]) > 6 else ""))
    lines.append("modes     " + ", ".join(f"{m}: {k:,}" for m, k in rep["modes"].items()))
    probs = rep["problems"]
    if not probs:
        lines.append("problems  none")
    else:
        lines.append(f"problems  {rep['n_errors']:,} errors, {rep['n_warnings']:,} warnings")
        for s in rep.get("problem_summary") or summarize_problems(probs):
            lines.append(f"  {s['severity']:<8} {s['text']}")
        shown = probs[:max_problems]
        lines.append(f"listing   {'all ' + str(len(probs)) if len(shown) == len(probs) else f'first {len(shown)} of {len(probs):,}'}"
                     f" problem{'s' if len(probs) != 1 else ''}" + ("" if len(shown) == len(probs) else " (--json for all)"))
        for p in shown:
            lines.append(f"  {p['severity']}: {p['kind']}: {p['message']}")
        if len(probs) > max_problems:
            lines.append(f"  … {len(probs) - max_problems:,} more (use --json for all; totals above)")
    lines.append("verdict   " + ("usable" if rep["usable"] else "UNUSABLE: fix the errors above"))
    return "\n".join(lines)
