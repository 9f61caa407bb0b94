# shellcheck shell=bash
# ensure_venv EXTRAS: create ./.venv with Python ≥ 3.11 and install the project (editable) when
# pyproject.toml changed since the last install.
ensure_venv() {
  local extras="$1" python=""
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
  if [ -z "$python" ]; then echo "Workbench needs Python 3.11 or newer." >&2; exit 1; fi
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $python…"
    "$python" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
  fi
  local stamp=".venv/.installed${extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing workbench${extras} into .venv…"
    # the distribution was called `workbench` before 0.2 (now `workbench-steps`): drop the old one
    .venv/bin/python -m pip uninstall -q -y workbench >/dev/null 2>&1 || true
    if ! .venv/bin/python -m pip install -q -e ".${extras}" > .venv/install.log 2>&1; then
      cat .venv/install.log >&2
      echo "Installing failed (the log is above, and in .venv/install.log)." >&2
      exit 1
    fi
    touch "$stamp"
  fi
}
