"""examples/typed.py runs as well as type-checks (scripts/typecheck.sh checks
it under mypy --strict): an example that passes mypy but fails is no example."""

from conftest import run_script


def test_typed_example_runs():
    r = run_script("import runpy; runpy.run_path('examples/typed.py', run_name='__main__')",
                   timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "32 digests, 3 lookups: ok\n"
    assert r.stderr == ""
