#!/usr/bin/env bash
# The type stubs, checked: stubtest compares gopy/*.pyi with the runtime
# (the extension must be built), examples/typed.py must be clean under
# mypy --strict, and tests/typecheck/mistakes.py must give exactly the errors
# marked in it, so a stub too loose to catch them fails here too.
# PYTHON: an interpreter with mypy and gopy's build (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}

echo "stubtest gopy"
"$py" -m mypy.stubtest gopy --mypy-config-file pyproject.toml --strict-type-check-only \
    --allowlist scripts/stubtest-allowlist.txt
echo "mypy --strict examples/typed.py"
"$py" -m mypy --strict examples/typed.py
echo "mypy --strict tests/typecheck/mistakes.py: exactly the marked errors"
"$py" - tests/typecheck/mistakes.py <<'PYEOF'
import re
import sys

from mypy import api

path = sys.argv[1]
with open(path) as f:
    want = {(n, m.group(1)) for n, line in enumerate(f, 1)
            if (m := re.search(r"# E: ([\w-]+)$", line))}
out, err, status = api.run(["--strict", path])
got = {(int(m.group(1)), m.group(2)) for m in
       re.finditer(rf"^{re.escape(path)}:(\d+): error: .*\[([\w-]+)\]$", out, re.M)}
for line, code in sorted(want - got):
    print(f"{path}:{line}: expected a [{code}] error, mypy gave none")
for line, code in sorted(got - want):
    print(f"{path}:{line}: unexpected [{code}] error")
if want != got or status != 1 or err:
    print(out + err, end="")
    sys.exit(1)
print(f"{len(got)} errors, as marked")
PYEOF
