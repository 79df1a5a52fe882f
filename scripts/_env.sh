# Sourced by the scripts: a virtualenv with triggerd installed, and PostgreSQL server
# binaries (Debian's package when we can install it, else the pgserver wheel).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${TRIGGERD_VENV:-.venv}"
extras="${TRIGGERD_EXTRAS:-}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)$extras"
if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
    touch "$stamp"
fi
apt_updated=
apt_install() {  # Debian packages, as root; the package lists are updated once per run
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! "$VENV/bin/python" -c 'from supervisor.node.postgres import find_bindir; find_bindir()' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing PostgreSQL server binaries (apt-get install postgresql)" >&2
        apt_install postgresql
    else
        echo "installing PostgreSQL server binaries (pip install pgserver)" >&2
        "$VENV/bin/python" -m pip install -q 'pgserver>=0.1.4,<1'
    fi
fi
