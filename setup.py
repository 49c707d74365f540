"""Build the compiled order book. All metadata lives in pyproject.toml.

ENGINE_PUREPYTHON=1   skip the extension (the reference book is used)
ENGINE_DEBUG=1        bounds, wraparound and overflow checks, -O0, annotation HTML

The extension is ``gaemi.engine._book`` while its sources live in ``engine/`` (pyproject.toml
maps the folder to the package). Cython finds a module's own ``.pxd`` by the module's package
path, so the two sources are mirrored (copied, with their times) to
``build/cython/gaemi/engine/`` and compiled from there; ``engine/`` stays the only copy anyone
edits.
"""

import os
import shutil
from pathlib import Path

from setuptools import Extension, setup

SOURCES = ("_book.pyx", "_book.pxd")


def _mirror() -> str:
    package = Path("build", "cython", "gaemi", "engine")
    package.mkdir(parents=True, exist_ok=True)
    for marker in (package.parent / "__init__.py", package / "__init__.py"):
        marker.touch()  # packages for Cython's lookup only; never installed
    for name in SOURCES:
        shutil.copy2(Path("engine", name), package / name)
    return str(package / "_book.pyx")


def extensions():
    if os.environ.get("ENGINE_PUREPYTHON") == "1":
        return []
    from Cython.Build import cythonize

    debug = os.environ.get("ENGINE_DEBUG") == "1"
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "overflowcheck": debug,
        "initializedcheck": debug,
    }
    macros = [("ENGINE_DEBUG", "1")] if debug else []
    flags = ["-O0", "-g"] if debug else ["-O3"]
    ext = Extension("gaemi.engine._book", [_mirror()], define_macros=macros,
                    extra_compile_args=flags)
    return cythonize([ext], compiler_directives=directives, annotate=debug)


setup(ext_modules=extensions())
