"""Build corral: generate corral.protos from protos/*.proto, compile the hot path.

Every `NAME.py` of a corral package that has an augmenting `NAME.pxd` beside it is
compiled by Cython (pure-Python mode: one source for both builds): `_core`'s generic
machinery and each engine's status loop (`sdk/engines/*/_status.py`, ...). The same `.py`
stays importable as the pure-Python twin, selected with CORRAL_NO_EXTENSIONS=1 (see
corral._core, which applies one rule to all of them).

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


PACKAGES = [
    "corral",
    "corral._core",
    "corral.protos",
    *(f"corral.{p}" for p in (
        "engines", "engines.agent", "engines.executor", "engines.master", "engines.master.allocator",
        "engines.scheduler",
        "master", "agent", "executors", "framework", "net", "resources", "runtime", "security", "testing",
        "testing.sim",
    )),
    "corral.examples",
    "corral.examples.spark",
    "corral.examples.cassandra",
]
PACKAGE_DIR = {
    "corral": "sdk",
    "corral._core": "_core",
    "corral.protos": "protos",
    "corral.examples": "examples",
}


def source_dir(package: str) -> str:
    """Where a corral package's sources are (package_dir's mapping, as setuptools reads it)."""
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        base = PACKAGE_DIR.get(".".join(parts[:i]))
        if base is not None:
            return os.path.join(HERE, base, *parts[i:])
    raise KeyError(package)


def stage_compiled_sources() -> list[tuple[str, str]]:
    """Mirror every compiled module as build/cython/corral/.../NAME.py and NAME.pxd
    (symlinks, with empty __init__.py files along the way), so that Cython sees each
    module under its real name (e.g. corral.engines.master._status), finds the augmenting
    .pxd beside it and the .pxd files it cimports. Returns (module name, staged .py path)
    for every module to compile."""
    root = os.path.join("build", "cython")
    modules = []
    for package in PACKAGES:
        for pxd in sorted(glob.glob(os.path.join(source_dir(package), "*.pxd"))):
            name = os.path.splitext(os.path.basename(pxd))[0]
            source = os.path.join(os.path.dirname(pxd), name + ".py")
            if not os.path.exists(source):
                continue
            stage = os.path.join(root, *package.split("."))
            os.makedirs(stage, exist_ok=True)
            for depth in range(1, len(package.split(".")) + 1):
                pkg_init = os.path.join(root, *package.split(".")[:depth], "__init__.py")
                if not os.path.exists(pkg_init):
                    open(pkg_init, "w").close()
            for original in (source, pxd):
                link = os.path.join(stage, os.path.basename(original))
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(original, link)
            modules.append((f"{package}.{name}", os.path.join(stage, name + ".py")))
    return modules


def compiled_extensions() -> list:
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
        for name, source in stage_compiled_sources()
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
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={
        "": ["*.pxd", "*.pyi"],  # the compiled modules' declarations and type stubs
        "corral": ["py.typed"],
        "corral.master": ["webui/*"],  # the web UI the master serves
        "corral.protos": ["*.proto"],
    },
    ext_modules=compiled_extensions(),
    cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos},
    zip_safe=False,
)
