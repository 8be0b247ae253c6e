"""gopy benchmarks: gopy against its Python peers (and Go, for the C-API workloads).

Run ``python -m benchmarks.run --help``. Programmatic use::

    from benchmarks.harness import run, format_table
    print(format_table(run(quick=True)))
"""
