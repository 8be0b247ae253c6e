"""A source checkout whose C extension is not built, imported in place of
an installed gopy (a script run from the checkout's root), raises an
ImportError that names the folder and says how to build it or avoid it."""

import importlib.machinery
import os
import shutil
import subprocess
import sys

import gopy

PACKAGE = os.path.dirname(os.path.abspath(gopy.__file__))
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def unbuilt_checkout(tmp_path):
    """A checkout root holding gopy/ without any built extension; returns
    its resolved path (what os.getcwd(), and so the message, shows)."""
    root = tmp_path.resolve()
    shutil.copytree(PACKAGE, root / "gopy",
                    ignore=shutil.ignore_patterns("_gopy.*", "__pycache__"))
    (root / "main.py").write_text("import gopy\nprint(gopy.Chan)\n")
    return root


def run_main(root):
    """python main.py from the checkout's root.  -S leaves site-packages out:
    an installed gopy would not change what is imported (the script's folder
    comes first), but setuptools' editable-install finder would quietly lend
    the checkout another tree's extension."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-S", "main.py"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_unbuilt_checkout_says_where_it_is_and_how_to_build_it(tmp_path):
    root = unbuilt_checkout(tmp_path)
    proc = run_main(root)
    assert proc.returncode == 1
    hint = (f"ImportError: gopy was imported from {root / 'gopy'}, where its C extension "
            f"is not built for this Python (no _gopy{SUFFIX} there). If that is a source "
            f"checkout, build the extension in place (pip install -e {root}, or python "
            f"setup.py build_ext --inplace in {root}), or run from another directory so "
            f"that the installed gopy is imported.")
    assert proc.stderr.rstrip().splitlines()[-1] == hint, proc.stderr
    assert "circular import" not in proc.stderr


def test_an_extension_that_fails_to_load_keeps_its_own_error(tmp_path):
    root = unbuilt_checkout(tmp_path)
    (root / "gopy" / f"_gopy{SUFFIX}").write_bytes(b"not a shared object")
    proc = run_main(root)
    assert proc.returncode == 1
    assert "ImportError" in proc.stderr, proc.stderr
    assert "is not built for this Python" not in proc.stderr
