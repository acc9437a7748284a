# Sourced by scripts/serve and scripts/test: make .venv (Python 3.11+) and install into it.
# Usage: ensure_venv EXTRAS   (EXTRAS is "" for the runtime only, or "test")
ensure_venv() {
    local root extras="$1"
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        # Debian splits venv/ensurepip out of python3; install it when we may.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        else
            echo "python3-venv is missing: sudo apt-get install python3-venv" >&2
            return 1
        fi
    fi
    [ -x "$root/.venv/bin/python" ] || python3 -m venv "$root/.venv"
    local spec="$root"
    [ -n "$extras" ] && spec="$root[$extras]"
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
}
