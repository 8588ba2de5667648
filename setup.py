"""Build script: the pure-Python package, with `kernels/` mapped to `ntm_fast._kernels`.

The native extension (csrc/) is added by `_native_extensions()`.
"""

from setuptools import setup


def _native_extensions():
    return [], {}


ext_modules, cmdclass = _native_extensions()

setup(
    packages=["ntm_fast", "ntm_fast._kernels", "ntm_fast.tasks"],
    package_dir={"ntm_fast": "ntm_fast", "ntm_fast._kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
