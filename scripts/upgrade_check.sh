#!/usr/bin/env bash
# `make upgrade-check`: would the newest versions that pyproject.toml allows pass the tests?
# Resolves them (uv, for this machine's Python), installs them into a scratch venv
# (build/upgrade-venv), runs the whole test suite there and writes build/upgrade-check.md:
# pass or fail, and every package whose version moved against requirements/dev.lock.
# The lock files are not touched: if it passes, `make lock` takes the new versions.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=build/upgrade-check
VENV=build/upgrade-venv
mkdir -p "$OUT"
rm -rf "$VENV"

UV_PYTHON_DOWNLOADS=never .venv/bin/uv pip compile --quiet --upgrade --extra dev \
  --python "$(command -v python3)" pyproject.toml -o "$OUT/newest.txt" || { echo "upgrade-check: resolving failed"; exit 1; }
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$OUT/newest.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .

moved=$(.venv/bin/python scripts/locks.py requirements/dev.lock "$VENV")
echo "running the test suite with the newest versions (log: $OUT/pytest.log)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider > "$OUT/pytest.log" 2>&1
rc=$?
verdict=$([ $rc = 0 ] && echo PASS || echo FAIL)
{
  echo "# upgrade-check $(date -u +%Y-%m-%dT%H:%M:%SZ): $verdict"
  echo
  echo "$(tail -n 1 "$OUT/pytest.log")"
  echo
  echo "## Packages that moved against requirements/dev.lock"
  echo
  echo "${moved:-none}"
} > build/upgrade-check.md
cat build/upgrade-check.md
[ $rc = 0 ] && echo "upgrade-check: PASS; take the new versions with: make lock" \
  || echo "upgrade-check: FAIL; see $OUT/pytest.log before taking them"
exit $rc
