"""Build gopy._gopy: the CPython binding (src/python) with the C runtime
(src/runtime) compiled in, its symbols hidden; other extensions reach the
runtime through the capsule (include/gopy.h, GOPY_CAPSULE)."""

import os
import shutil
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def sources(folder, pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, folder, pattern)))


class BuildExt(build_ext):
    """Teach the compiler assembly (.S) sources: the context switch."""

    def build_extensions(self):
        self.compiler.src_extensions.append(".S")
        super().build_extensions()


# The benchmark table's harness ships as gopy._bench (pyproject.toml maps it to
# benchmarks/), so that `python -m gopy` runs it from an install. Only the Python
# rows' modules: cores.py, compare.py, the probes and native/ (C built against
# src/runtime, and Go) need the source checkout.
BENCH_MODULES = {"__init__", "harness", "workloads", "servers"}


class BuildPy(build_py):
    """Ship include/gopy.h inside the package, for gopy.get_include(), and of
    benchmarks/ only the harness (BENCH_MODULES)."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package != "gopy._bench":
            return modules
        return [m for m in modules if m[1] in BENCH_MODULES]

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "gopy", "include")
        os.makedirs(target, exist_ok=True)
        shutil.copy(os.path.join(HERE, "include", "gopy.h"), target)


debug = os.environ.get("GOPY_DEBUG_BUILD") == "1"
sanitize = os.environ.get("GOPY_SANITIZE", "")  # "address" or "thread"
# -fno-plt: libc bound at load, not by a lazy resolver on a goroutine's small
# stack (src/runtime/Makefile).
cflags = ["-std=gnu11", "-fvisibility=hidden", "-fno-plt", "-Wall", "-Wextra",
          "-Wmissing-prototypes", "-Wno-missing-field-initializers"]
cflags += ["-O0", "-g"] if debug else ["-O2", "-g"]
if debug or sanitize:
    cflags += ["-DGOPY_CHECKS"]  # the runtime's invariants and lock order (runtime.h)
ldflags = []
if sanitize:
    cflags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
    ldflags += [f"-fsanitize={sanitize}"]

setup(
    ext_modules=[
        Extension(
            "gopy._gopy",
            sources=sources("src/python", "*.c")
            + sources("src/runtime", "*.c")
            + sources("src/runtime", "*.S"),
            include_dirs=["include", "src/runtime"],
            depends=sources("src/python", "*.h") + sources("src/runtime", "*.h") + ["include/gopy.h"],
            extra_compile_args=cflags,
            extra_link_args=ldflags + ["-pthread"],
        )
    ],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
)
