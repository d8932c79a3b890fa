"""The Makefile's own promises: every .PHONY target exists, ``make help`` names every target, and every
install is pinned (hashed lock files only; no bare ``--upgrade``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def _targets() -> set[str]:
    return {m for m in re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M)}


def _phony() -> set[str]:
    (line,) = re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.M)
    return set(line.split())


def test_every_phony_target_exists_and_every_target_is_phony() -> None:
    assert _phony() == _targets()


def test_help_names_every_target() -> None:
    listed = set(re.findall(r'@echo "make ([a-z-]+) ', MAKEFILE))
    assert listed == _targets() - {"help"}


def test_every_install_is_from_a_hashed_lock() -> None:
    installs = re.findall(r"pip install[^\n]*", MAKEFILE)
    assert installs
    for install in installs:
        assert "--require-hashes" in install, install
        assert re.search(r"-r requirements(-dev)?\.lock", install), install
    assert "--upgrade" not in MAKEFILE


def test_the_scripts_named_in_comments_exist() -> None:
    for script in re.findall(r"scripts/[\w.-]+", MAKEFILE):
        assert (ROOT / script).is_file(), script
