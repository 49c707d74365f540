"""Build the compiled order book. All metadata lives in pyproject.toml.

ENGINE_PUREPYTHON=1   skip the extension (the reference book is used)
ENGINE_DEBUG=1        bounds, wraparound and overflow checks, -O0, annotation HTML
"""

import os

from setuptools import Extension, setup


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
    ext = Extension("engine._book", ["engine/_book.pyx"], define_macros=macros,
                    extra_compile_args=flags)
    return cythonize([ext], compiler_directives=directives, annotate=debug)


setup(ext_modules=extensions())
