"""The Docker image's promises, read from ``Dockerfile`` and ``.dockerignore`` (no engine runs here).

What is checked: the application is copied without ``--chown`` (root's, read-only for the bot's user)
and only ``/app/data`` is handed to uid 10001; the image runs as that user, keeps its ``HEALTHCHECK``
and installs only from the hashed lock; pip and setuptools are removed from the final image; and the
build context is exactly the product: every module the running bot imports is in it, and the test
suite, benchmarks, sandbox, Makefile, CI, scripts, dev lock and secrets are not. The context is
computed with Docker's own matching rules (last matching pattern wins, a pattern matching a parent
folder matches everything in it, ``!`` lets back in). Building the image is not part of the suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with its stage number."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued RUN
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(keyword.upper(), args.strip(), stage))
    return result


def final_stage() -> list[Instruction]:
    every = instructions()
    last = max(i.stage for i in every)
    return [i for i in every if i.stage == last]


def test_application_files_belong_to_root_and_only_the_data_folder_to_the_bot() -> None:
    final = final_stage()
    copies = [i for i in final if i.keyword == "COPY"]
    assert copies, "the final stage copies nothing"
    assert not [i for i in copies if "--chown" in i.args], (
        "application files must not belong to the bot's user"
    )
    app = next(i for i in copies if i.args.split()[-2:] == [".", "."])
    user = next(i for i in final if i.keyword == "USER")
    assert final.index(app) < final.index(user), "the code is copied (as root) before switching user"
    assert user.args.split(":")[0] in {"10001", "kling"}
    assert user.args.split(":")[0] != "root"
    runs = " && ".join(i.args for i in final if i.keyword == "RUN")
    chowns = re.findall(r"chown\s+(?:-\S+\s+)*\S+\s+(\S+)", runs)
    assert chowns == ["/app/data"], chowns
    assert "chmod -R u=rwX,go=rX /app" in runs  # nothing group- or world-writable, whatever the context had
    assert "--uid 10001" in runs
    workdir = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdir == ["/app"]
    assert any(i.keyword == "VOLUME" and "/app/data" in i.args for i in final)


def test_the_healthcheck_and_the_command_stay() -> None:
    final = final_stage()
    (health,) = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert health.args.split("CMD", 1)[1].strip() == '["python", "healthcheck.py"]'
    (command,) = [i for i in final if i.keyword == "CMD"]
    assert json.loads(command.args) == ["python", "bot.py"]
    header = (ROOT / "Dockerfile").read_text(encoding="utf-8").split("FROM", 1)[0]
    assert "--format docker" in header  # buildah/podman's OCI format would drop the HEALTHCHECK
    assert "--restart unless-stopped" in header


def test_installs_only_from_the_hashed_lock_and_ships_no_installer() -> None:
    every = instructions()
    runs = [i for i in every if i.keyword == "RUN"]
    for run in runs:
        for install in re.findall(r"pip install[^&]*", run.args):
            assert "--require-hashes" in install, install
            assert "-r requirements.lock" in install, install
    build = [i.args for i in runs if i.stage < max(r.stage for r in every)]
    assert any("/opt/venv/bin/pip uninstall --yes pip setuptools" in args for args in build)
    final_runs = " ".join(i.args for i in final_stage() if i.keyword == "RUN")
    assert "pip uninstall --yes pip setuptools wheel" in final_runs
    assert "pip install" not in final_runs


# ---------------------------------------------------------------------------------------- the context


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    include: bool


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus ``**``) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def parse(lines: list[str]) -> tuple[Pattern, ...]:
    patterns = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        cleaned = line.removeprefix("!").strip().strip("/")
        patterns.append(Pattern(_regex(cleaned), include))
    return tuple(patterns)


def sent(patterns: tuple[Pattern, ...], path: str) -> bool:
    """Whether Docker sends ``path`` (relative, with /) in the build context under ``patterns``."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path and its parents
    excluded = False
    for pattern in patterns:
        if any(pattern.regex.fullmatch(c) for c in candidates):
            excluded = not pattern.include
    return not excluded


@cache
def dockerignore() -> tuple[Pattern, ...]:
    return parse((ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines())


def in_context(path: str) -> bool:
    return sent(dockerignore(), path)


def repository_files() -> list[str]:
    """Every file of the working copy (the caches' and virtualenv's represented by one path each),
    plus the untracked files a deployment has lying around."""
    skipped = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
    files = [f"{name}/x" for name in sorted(skipped)]
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in skipped]
        files += [str((Path(folder) / name).relative_to(ROOT)) for name in names]
    return [*files, ".env", "data/kling-bot.db", "data/heartbeat", "benchmarks/out/ack.json"]


#: Modules the bot imports only when first needed (matplotlib's chart, on the first usage report).
LAZY_MODULES = ("generation.usage_chart",)


def modules_the_bot_runs() -> list[str]:
    """Every file of this repository the running bot imports (its cogs, the health check, the
    migration scripts Alembic loads by path, the data copier, what it loads lazily), as relative paths."""
    probe = (
        "import importlib, json, sys, pathlib\n"
        "import bot, healthcheck, storage.copy\n"
        "for name in bot.INITIAL_EXTENSIONS: importlib.import_module(name)\n"
        f"for name in {LAZY_MODULES!r}: importlib.import_module(name)\n"
        "root = pathlib.Path(sys.argv[1])\n"
        "venv = pathlib.Path(sys.prefix).resolve()\n"  # installed packages come from the lock, not the context
        "files = {pathlib.Path(m.__file__).resolve() for m in list(sys.modules.values()) "
        "if getattr(m, '__file__', None)}\n"
        "print(json.dumps(sorted(str(f.relative_to(root)) for f in files "
        "if f.is_relative_to(root) and not f.is_relative_to(venv))))\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe, str(ROOT)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported: list[str] = json.loads(result.stdout)
    migrations = [str(p.relative_to(ROOT)) for p in (ROOT / "migrations").rglob("*.py")]
    return sorted(set(imported) | set(migrations))


def test_the_context_holds_every_module_the_bot_runs() -> None:
    needed = modules_the_bot_runs()
    assert "bot.py" in needed
    assert "cogs/video.py" in needed
    assert "migrations/env.py" in needed
    missing = [path for path in needed if not in_context(path)]
    assert missing == [], f"the image would lack {missing}: let them in in .dockerignore"
    assert in_context("requirements.lock")
    assert in_context("healthcheck.py")


def test_the_context_holds_nothing_else() -> None:
    files = repository_files()
    context = {path for path in files if in_context(path)}
    needed = set(modules_the_bot_runs())
    for never in ("Makefile", "Dockerfile", ".dockerignore", "requirements-dev.lock", "pyproject.toml",
                  "README.md", ".env", ".env.example", ".gitignore", "alembic.ini"):  # fmt: skip
        assert never not in context, never
    for folder in (".ci/", "scripts/", "tests/", "benchmarks/", "sandbox/", ".git/", ".venv/", "data/",
                   "ulazai/sandbox_assets/", ".mypy_cache/"):  # fmt: skip
        assert not [path for path in context if path.startswith(folder)], folder
    assert not [path for path in context if "__pycache__" in path or path.endswith(".pyc")]
    assert "ulazai/sandbox.py" not in context
    # Beyond the modules the bot imports, only the lock and Alembic's template (harmless) get in.
    extra = context - needed - {"requirements.lock", "migrations/script.py.mako"}
    assert extra == set(), extra


def test_the_matcher_follows_dockers_rules() -> None:
    """The matcher above, on Docker's documented behaviour, so the context checks mean what they say."""

    def matches(rules: list[str], path: str) -> bool:
        return sent(parse(rules), path)

    assert not matches(["*"], "Makefile")
    assert not matches(["*"], "tests/test_bot.py")  # the folder matches, so its files do
    assert matches(["*", "!cogs/"], "cogs/video.py")
    assert not matches(["*", "!cogs/", "**/__pycache__"], "cogs/__pycache__/video.cpython-311.pyc")
    assert matches(["*.md", "!README*.md"], "README-secret.md")
    assert not matches(["*.md", "!README*.md", "README-secret.md"], "README-secret.md")
    assert matches(["*", "!*.py"], "bot.py")
    assert not matches(["*", "!*.py"], "tests/conftest.py")  # * and *.py never cross a /
    assert not matches(["**/*.py[cod]"], "storage/x.pyc")
