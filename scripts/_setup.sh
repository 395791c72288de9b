# Sourced by scripts/test and scripts/demo: installs what this checkout needs
# on a fresh Debian-like machine with Python 3.10+, idempotently.
#   - Node.js + npm (Debian packages) to bundle js/ with esbuild
#   - a virtualenv in .venv with ipybridge (built wheel, not the source tree) and its [dev] extras
#   - Debian's chromium for the browser tests (only when NEED_CHROMIUM=1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "${IPYBRIDGE_SETUP:-}" = done ] && [ -x .venv/bin/python ]; then
  # Already set up in this checkout (the tests run scripts/demo this way): use the .venv as it is.
  export PATH="$ROOT/.venv/bin:$PATH"
  return 0 2>/dev/null || exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "==> installing Node.js and npm (Debian packages)"
  apt_install nodejs npm
fi
if [ "${NEED_CHROMIUM:-0}" = 1 ] && [ -z "${IPYBRIDGE_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "==> installing Debian's chromium for the browser tests"
  apt_install chromium
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
export PATH="$ROOT/.venv/bin:$PATH"

echo "==> building the page modules (esbuild)"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node js/build.mjs

echo "==> installing ipybridge and its dev tools into .venv"
python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# A real wheel, so the tests exercise what users install (static files included).
python -m pip install -q --force-reinstall --no-deps . 2>&1 | grep -v '^WARNING: Location' || true
python -m pip install -q ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
python -c "import ipybridge, pathlib; assert (pathlib.Path(ipybridge.__file__).parent / 'static' / 'bridge.js').exists(), 'static bundle missing from the wheel'"
