"""The plugin-facing API: everything a plugin may import from the engine besides ``augengine``.

A plugin imports ``augengine`` (the plugin base classes, ``ImageSet``, errors, factories,
image conversions) and this module — nothing else of the engine. Every other module of the
package is internal and may change between releases; the names here change only with a
deprecation. The built-in plugins (``plugins/augengine_*``) follow the same rule, so they
double as templates::

    import augengine as ae
    from augengine.plugin_api import load_checkpoint, save_checkpoint, write_run_record

Groups:

* **run records and checkpoints** — atomic writes, ``weights_only`` checkpoints, ``run.json``.
* **selections** — the ``selection.json`` format and filtered sets (filters, translators).
* **runtime** — device choice, autocast and channels-last choice, fp16 gradient scaling,
  RNG isolation.
* **statistics** — :mod:`augengine.stats` (bootstrap weights, confusion matrices, CIs, tests),
  as the module ``stats``.
* **data** — training-time augmentation (``Augment``), the engine's cache folder (``cache_dir``).
* **output names** — safe, unique file names for sets named by users (``slug``, ``unique_slugs``).
"""

from __future__ import annotations

from augengine import stats
from augengine.amp import LossScaler, needs_loss_scaling
from augengine.data.augment import Augment
from augengine.data.cache import cache_dir
from augengine.images import tensor_view
from augengine.naming import slug, unique_slugs
from augengine.rng import global_rng_state, isolated_global_rng
from augengine.rundir import check_output_file
from augengine.runs import (
    RUN_RECORD,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    read_run_record,
    save_checkpoint,
    sha256_file,
    software_versions,
    write_run_record,
)
from augengine.runtime import (
    autocast_context,
    autocast_dtype,
    benchmarked_convolutions,
    cpu_supports_bf16,
    deterministic_algorithms,
    resolve_channels_last,
    retained_heap,
    select_device,
)
from augengine.selection import (
    SELECTION_SCHEMA,
    read_selection,
    selection_record,
    write_filtered_set,
    write_selection,
)

# Speed settings that are measured rather than guessed (augengine.autotune), next to the
# runtime helpers; plugins import them from this module.
from augengine.autotune import (
    PluginTrial,
    Resolution,
    Variant,
    precision_options,
    resolve_variant,
    static_variant,
    timed_steps,
)

__all__ = [
    # run records and checkpoints
    "RUN_RECORD",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "load_checkpoint",
    "read_run_record",
    "save_checkpoint",
    "sha256_file",
    "software_versions",
    "write_run_record",
    "check_output_file",
    # selections
    "SELECTION_SCHEMA",
    "read_selection",
    "selection_record",
    "write_filtered_set",
    "write_selection",
    # runtime
    "autocast_context",
    "autocast_dtype",
    "benchmarked_convolutions",
    "cpu_supports_bf16",
    "deterministic_algorithms",
    "resolve_channels_last",
    "retained_heap",
    "select_device",
    "LossScaler",
    "needs_loss_scaling",
    "isolated_global_rng",
    "global_rng_state",
    "tensor_view",
    # statistics
    "stats",
    # data
    "Augment",
    "cache_dir",
    # output names
    "slug",
    "unique_slugs",
]
__all__ += ["PluginTrial", "Resolution", "Variant", "precision_options", "resolve_variant", "static_variant",
            "timed_steps"]

# What a plugin's ``work`` classmethod reports (plan estimates: augengine.work)
from augengine.work import ClassifierPass, Work, work_autocast  # noqa: E402

__all__ += ["ClassifierPass", "Work", "work_autocast"]
