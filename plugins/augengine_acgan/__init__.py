"""augengine built-in plugin ``acgan``: ACGAN (Odena, Olah & Shlens 2017) class-conditional generator."""

import augengine

from augengine_acgan.generator import AcganConfig, AcganGenerator

__all__ = ["AcganConfig", "AcganGenerator", "register_generators"]


@augengine.hookimpl
def register_generators(register):
    register(AcganGenerator)
