"""augengine built-in generators: ``cyclegan`` (Zhu et al. 2017) and the ``acgan+cyclegan`` composition.

Registered through the ``augengine`` entry-point group like any third-party plugin.
"""

import augengine

from .composition import SourceTranslatorComposition
from .cyclegan import CycleGanConfig, CycleGanGenerator

__all__ = ["CycleGanGenerator", "CycleGanConfig", "SourceTranslatorComposition"]


@augengine.hookimpl
def register_generators(register):
    register(CycleGanGenerator)
    register(SourceTranslatorComposition)
