"""gopy benchmarks: gopy against its Python peers (and Go, for the C-API workloads).

Run ``python -m benchmarks.run --help`` in a checkout, or ``python -m gopy --help``
anywhere: an install carries the harness as ``gopy._bench`` (setup.py), without the
C rows. Programmatic use::

    from benchmarks.harness import run, format_table
    print(format_table(run(quick=True)))
"""
