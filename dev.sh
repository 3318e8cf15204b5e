#!/usr/bin/env bash
# The project's two entry points on a fresh Debian 12 machine:
#   ./dev.sh demo   sandbox Asterisk 22 + nohold on SQLite + one scripted call
#   ./dev.sh test   everything the tests need, then all tests (unit, e2e, PostgreSQL)
#   ./dev.sh test --repeat-fresh N [pytest args]
#                   the whole suite N times in a row, each run against a fresh
#                   sandbox Asterisk of its own; prints each run's result and time
# Both install what they need first: Debian packages (needs root or sudo) and a
# virtualenv in .venv. Asterisk itself goes into a private Debian root (see
# nohold/sandbox/rootfs.py), never onto the host.
set -euo pipefail
cd "$(dirname "$0")"

# nodejs: the tests' SMSC (node-smpp, tests/support/smpp_peer), a peer nohold does not share code with.
# faketime: a controlled wall clock for nohold's processes (a Saturday, a Wednesday).
DEBIAN_PACKAGES=(debootstrap sip-tester espeak-ng sox libsox-fmt-all postgresql nodejs faketime)
PYTHON=${PYTHON:-python3}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
    local missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
}

install_python() {
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    # Re-install only when the dependency list changed.
    local stamp=.venv/.nohold-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "installing Python packages into .venv (log: .venv/pip.log)" >&2
        if ! { .venv/bin/pip install --upgrade pip "setuptools>=77" && .venv/bin/pip install -e '.[test]'; } \
                >.venv/pip.log 2>&1; then
            tail -n 30 .venv/pip.log >&2
            echo "pip install failed; full log in .venv/pip.log" >&2
            exit 1
        fi
        touch "$stamp"
    fi
}

install_test_peers() {
    local peer=tests/support/smpp_peer
    if [ ! -f "$peer/node_modules/.nohold-installed" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules/.nohold-installed" ]; then
        echo "installing the test SMSC's node modules ($peer)" >&2
        (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error >&2)
        touch "$peer/node_modules/.nohold-installed"
    fi
}

# A flaky test is a defect: run the suite N times, each pytest session starting its
# own sandbox Asterisk, and report every run, not just the last.
repeat_fresh() {
    local runs=$1 failed=0 i start code
    shift
    for i in $(seq 1 "$runs"); do
        start=$(date +%s)
        set +e
        .venv/bin/python -m pytest -p no:cacheprovider -q "$@" >".venv/repeat-$i.log" 2>&1
        code=$?
        set -e
        echo "run $i/$runs: exit $code in $(( $(date +%s) - start ))s: $(grep -E '(passed|failed|error)' ".venv/repeat-$i.log" | tail -n 1) (log: .venv/repeat-$i.log)"
        [ "$code" -eq 0 ] || failed=$((failed + 1))
    done
    echo "$((runs - failed)) of $runs runs green"
    exit $(( failed > 0 ))
}

case "${1:-}" in
    demo)
        install_debian_packages
        install_python
        exec .venv/bin/nohold demo
        ;;
    test)
        install_debian_packages
        install_python
        install_test_peers
        shift
        .venv/bin/ruff check .
        .venv/bin/mypy nohold
        .venv/bin/lint-imports --no-cache   # the layers of docs/architecture.md
        if [ "${1:-}" = "--repeat-fresh" ]; then
            repeat_fresh "${2:?--repeat-fresh needs a count}" "${@:3}"
        fi
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
