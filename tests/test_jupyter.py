"""gopy in a real Jupyter kernel: a notebook built with nbformat, run by nbclient in an
ipykernel (both from the test extras), cell by cell as a user would, and the shipped
example notebook (examples/gopy_tour.ipynb), so that it never rots."""

import os

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def run_notebook(cells, timeout=60, **kwargs):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     allow_errors=True,
                                     resources={"metadata": {"path": ROOT}}, **kwargs)
    client.execute()
    return nb.cells


def stream(cell, name):
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == name)


def errors(cell):
    return [o for o in cell.outputs if o.output_type == "error"]


@pytest.fixture(scope="module", autouse=True)
def kernel_sees_this_checkout():
    # The kernel is a fresh interpreter: it must import this checkout's gopy.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + old if old else "")
    yield
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


def test_goroutines_in_a_kernel():
    cells = run_notebook([
        # 0: output from goroutines lands in the cell that waits for them
        # (one write each: print's parts from several goroutines may
        # interleave, as they may from threads)
        "import gopy, sys, threading, time\n"
        "done = gopy.WaitGroup(); done.add(3)\n"
        "for i in range(3):\n"
        "    gopy.go(lambda i=i: (sys.stdout.write(f'goroutine {i}\\n'), done.done()))\n"
        "done.wait()\n"
        "print('cell done')",
        # 1: an exception escaping a goroutine is shown
        "gopy.go(lambda: 1 / 0)\n"
        "time.sleep(0.5)",
        # 2: top-level await on the kernel's own event loop
        "c = gopy.Chan()\n"
        "gopy.go(lambda: c.send('from a goroutine'))\n"
        "print(await c.arecv(), await gopy.to_goroutine(pow, 3, 4))",
        # 3: a cell nobody can ever wake: DeadlockError, as in a script
        "gopy.Chan().recv()",
        # 5 (below): a timer can wake it: no false DeadlockError
        # 4: the kernel goes on after it
        "print('still alive', gopy.runtime.num_goroutine() >= 0)",
        "print(type(gopy.after(0.3).recv()).__name__)",
    ])
    assert sorted(stream(cells[0], "stdout").splitlines()) == [
        "cell done", "goroutine 0", "goroutine 1", "goroutine 2"]
    assert not errors(cells[0])
    assert "ZeroDivisionError" in stream(cells[1], "stderr")
    assert stream(cells[2], "stdout") == "from a goroutine 81\n"
    [err] = errors(cells[3])
    assert err.ename == "DeadlockError"
    assert "all goroutines are asleep" in err.evalue
    assert stream(cells[4], "stdout") == "still alive True\n"
    assert stream(cells[5], "stdout") == "float\n" and not errors(cells[5])


def test_an_interrupted_blocked_cell_leaves_the_kernel_working():
    # A thread that could send keeps DeadlockError away: the cell blocks
    # until the client interrupts it at its timeout.
    cells = run_notebook([
        "import gopy, threading, time\n"
        "c = gopy.Chan()\n"
        "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
        "c.recv()",
        "gopy.go(lambda: c.send('after the interrupt'))\n"
        "print(c.recv())",
    ], timeout=5, interrupt_on_timeout=True)
    [err] = errors(cells[0])
    assert err.ename == "KeyboardInterrupt"
    assert stream(cells[1], "stdout") == "after the interrupt\n"
    assert not errors(cells[1])


def test_the_example_notebook_runs_clean():
    path = os.path.join(ROOT, "examples", "gopy_tour.ipynb")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()  # raises on the first cell that fails
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]

