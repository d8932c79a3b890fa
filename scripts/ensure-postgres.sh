#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are installed, for the storage tests and the
# ledger benchmark, which start their own throw-away cluster (tests/postgres.py). Idempotent and fast
# when they are already there; installs Debian's `postgresql` package when they are not.
#
#   scripts/ensure-postgres.sh          prints the bin directory (also as PG_BINDIR=... on stderr)
#
# Under CI=true a failure to install is fatal (exit 1): CI must never skip the PostgreSQL tests.
# Elsewhere it only warns (exit 0), and the PostgreSQL tests skip.
set -euo pipefail

find_bindir() {
    if [[ -n "${KLING_PG_BINDIR:-}" && -x "${KLING_PG_BINDIR}/initdb" ]]; then
        echo "${KLING_PG_BINDIR}"
        return 0
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "${dir}" && -x "${dir}/initdb" ]]; then
        echo "${dir}"
        return 0
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

fail() {
    echo "ensure-postgres: $*" >&2
    if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
        exit 1
    fi
    echo "ensure-postgres: continuing without PostgreSQL; its tests will be skipped (they fail under CI=true)" >&2
    exit 0
}

if bindir=$(find_bindir); then
    echo "${bindir}"
    echo "PG_BINDIR=${bindir}" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    fail "PostgreSQL is not installed and there is no apt-get here; install PostgreSQL 13+ server binaries or set KLING_TEST_POSTGRES_URL"
fi

sudo=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        fail "PostgreSQL is not installed and installing it needs root (run: sudo apt-get install postgresql)"
    fi
fi

echo "ensure-postgres: installing PostgreSQL (Debian package 'postgresql')..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >&2; then
    fail "apt-get update failed"
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >&2; then
    fail "apt-get install postgresql failed"
fi

if bindir=$(find_bindir); then
    echo "${bindir}"
    echo "PG_BINDIR=${bindir}" >&2
    exit 0
fi
fail "postgresql was installed but initdb was not found under /usr/lib/postgresql/*/bin"
