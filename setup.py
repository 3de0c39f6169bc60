"""Build corral: generate corral.protos from protos/*.proto, compile the _core hot path.

Every `_core/NAME.py` that has an augmenting `_core/NAME.pxd` is compiled by Cython
(pure-Python mode: one source for both builds). The same `.py` stays importable as the
pure-Python twin, selected with CORRAL_NO_EXTENSIONS=1.

Environment:
  CORRAL_NO_EXTENSIONS=1   build nothing compiled (pure-Python install)
  CORRAL_DEBUG_BUILD=1     compile with bounds checks, assertions and -O0 -g
"""
from __future__ import annotations

import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "protos")


def generate_protos() -> None:
    """Run the build's own protoc (grpcio-tools) over protos/*.proto into protos/."""
    from grpc_tools import protoc  # a build requirement, see pyproject.toml
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for proto in sorted(glob.glob(os.path.join(PROTO_DIR, "*.proto"))):
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={PROTO_DIR}",
            f"--pyi_out={PROTO_DIR}",
            proto,
        ]
        if protoc.main(args) != 0:
            sys.exit(f"protoc failed on {proto}")


def stage_core_sources() -> list[tuple[str, str]]:
    """Mirror _core/ as build/cython/corral/_core/ (symlinks), so that Cython sees each
    module under its real name, corral._core.NAME, and finds the augmenting NAME.pxd
    beside NAME.py. Returns (module name, staged .py path) for every module to compile."""
    stage = os.path.join("build", "cython", "corral", "_core")
    os.makedirs(stage, exist_ok=True)
    for pkg_init in (os.path.join("build", "cython", "corral", "__init__.py"), os.path.join(stage, "__init__.py")):
        if not os.path.exists(pkg_init):
            open(pkg_init, "w").close()
    modules = []
    for pxd in sorted(glob.glob(os.path.join(HERE, "_core", "*.pxd"))):
        name = os.path.splitext(os.path.basename(pxd))[0]
        source = os.path.join(HERE, "_core", name + ".py")
        if not os.path.exists(source):
            continue
        for original in (source, pxd):
            link = os.path.join(stage, os.path.basename(original))
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(original, link)
        modules.append((f"corral._core.{name}", os.path.join(stage, name + ".py")))
    return modules


def core_extensions() -> list:
    if os.environ.get("CORRAL_NO_EXTENSIONS") == "1":
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    debug = os.environ.get("CORRAL_DEBUG_BUILD") == "1"
    modules = [
        Extension(
            name,
            [source],
            extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
            define_macros=[] if debug else [("CYTHON_WITHOUT_ASSERTIONS", "1")],
        )
        for name, source in stage_core_sources()
    ]
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": not debug,
        "embedsignature": True,
    }
    return cythonize(modules, compiler_directives=directives, quiet=True,
                     build_dir=os.path.join("build", "cython-c"))


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        generate_protos()
        super().run()


class SdistWithProtos(sdist):
    def run(self) -> None:
        generate_protos()
        super().run()


generate_protos()  # editable installs and build_ext --inplace need them too

setup(
    packages=[
        "corral",
        "corral._core",
        "corral.protos",
        *(f"corral.{p}" for p in (
            "engines", "master", "agent", "executors", "testing", "security",
        )),
    ],
    package_dir={
        "corral": "sdk",
        "corral._core": "_core",
        "corral.protos": "protos",
    },
    package_data={
        "corral": ["py.typed", "master/webui/*"],
        "corral._core": ["*.pxd", "*.pyi"],
        "corral.protos": ["*.proto", "*.pyi"],
    },
    ext_modules=core_extensions(),
    cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos},
    zip_safe=False,
)
