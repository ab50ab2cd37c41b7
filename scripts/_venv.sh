# Sourced by scripts/serve and scripts/test: make .venv and install the project into it,
# again only when pyproject.toml changes. Needs nothing but Python 3.11+ and PyPI.
ensure_venv() {
    local extras="$1" python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "leads needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-$extras}"
    if [ ! -f "$stamp" ]; then
        echo "installing leads${extras:+ with $extras extras} into .venv ..." >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            --editable ".${extras:+[$extras]}" 2> >(grep -v "is ignored" >&2)
        touch "$stamp"
    fi
}
