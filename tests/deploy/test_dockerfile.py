"""The Dockerfile keeps its promises: multi-stage, slim, non-root, health-checked, signals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .dockerfile import (
    Dockerfile,
    DockerIgnore,
    parse_dockerfile,
    parse_dockerignore,
    read_dockerfile,
)

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3?-dev|libc6?-dev|cargo|rustc)\b"
)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return read_dockerfile(REPO / "Dockerfile")


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return parse_dockerignore((REPO / ".dockerignore").read_text(encoding="utf-8"))


def test_multi_stage_with_slim_python_311_final_stage(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    final = dockerfile.final
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", final.base), final.base
    # The final stage starts from the base image, not from the build stage.
    assert final.base not in {s.name for s in dockerfile.stages if s.name}


def test_final_stage_runs_as_numeric_non_root_user_before_entrypoint(
    dockerfile: Dockerfile,
) -> None:
    final = dockerfile.final
    user = final.last("USER")
    assert user is not None
    uid, _, gid = user.raw.strip().partition(":")
    assert uid.isdigit(), user.raw
    assert int(uid) > 0, user.raw
    assert not gid or (gid.isdigit() and int(gid) > 0), user.raw
    assert final.position("USER") < final.position("ENTRYPOINT")
    # The numeric user is created in the image (so files it owns exist).
    created = " ".join(i.raw for i in final.all("RUN"))
    assert f"--uid {uid}" in created


def test_healthcheck_probes_livez_on_the_configured_port_without_curl(
    dockerfile: Dockerfile,
) -> None:
    health = dockerfile.final.last("HEALTHCHECK")
    assert health is not None
    words = health.raw.split()
    assert "CMD" in words
    command = health.raw[health.raw.index("CMD") + 3 :].strip()
    argv = parse_dockerfile(f"FROM x\nRUN {command}").final.instructions[0].exec_form
    assert argv is not None, "HEALTHCHECK CMD should be exec form"
    # The probe reads A2I_WORKER_HEALTH_HOST/PORT (tests/unit/test_probe.py): no fixed port.
    assert argv == ["python", "-m", "a2i_worker.probe", "livez"]
    assert "8080" not in health.raw
    assert "curl" not in health.raw
    assert "wget" not in health.raw
    assert "EXPOSE" in {i.keyword for i in dockerfile.final.instructions}
    assert "8080" in dockerfile.final.last("EXPOSE").raw.split()  # type: ignore[union-attr]


def test_no_build_tools_in_final_stage(dockerfile: Dockerfile) -> None:
    for instruction in dockerfile.final.instructions:
        assert not BUILD_TOOLS.search(instruction.raw), instruction
    # Nothing in the image is compiled: every dependency comes from a wheel.
    install = " ".join(i.raw for i in dockerfile.stage("build").all("RUN"))
    assert "--only-binary=:all:" in install


def test_exec_form_entrypoint_and_sigterm(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    entrypoint = final.last("ENTRYPOINT")
    cmd = final.last("CMD")
    assert entrypoint is not None
    assert entrypoint.exec_form == ["a2i-worker"]
    assert cmd is not None
    assert cmd.exec_form == ["run"]
    stop = final.last("STOPSIGNAL")
    assert stop is not None
    assert stop.raw.strip() == "SIGTERM"


def test_python_environment(dockerfile: Dockerfile) -> None:
    env = " ".join(i.raw for i in dockerfile.final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_installs_pinned_constraints_and_project_wheel_without_extras(
    dockerfile: Dockerfile,
) -> None:
    build = dockerfile.stage("build")
    install = " ".join(i.raw for i in build.all("RUN"))
    assert "--constraint requirements/constraints.txt" in install
    assert "pip wheel --no-deps" in install
    assert "[" not in install, "no extras ([dev], [local]) in the image"
    assert "-e " not in install, "no editable install"
    # The final stage takes only the virtualenv from the build stage.
    copies = dockerfile.final.all("COPY")
    assert copies
    assert all(c.flags().get("from") == "build" for c in copies)


def test_copy_sources_exist_and_are_in_the_build_context(
    dockerfile: Dockerfile, dockerignore: DockerIgnore
) -> None:
    checked = 0
    for stage in dockerfile.stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            if "from" in copy.flags():
                assert copy.flags()["from"] in {s.name for s in dockerfile.stages}
                continue
            *sources, _dest = copy.exec_form or copy.words()
            for source in sources:
                assert (REPO / source).exists(), f"COPY source {source!r} missing"
                assert not dockerignore.excluded(source.rstrip("/")), source
                checked += 1
    assert checked >= 3


def test_dockerignore_keeps_local_state_out(dockerignore: DockerIgnore) -> None:
    for path in [
        ".venv",
        ".venv/bin/python",
        ".git",
        ".git/config",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "src/a2i_worker/__pycache__/x.cpython-311.pyc",
        "src/a2i_worker.egg-info/PKG-INFO",
        "tests/deploy/test_dockerfile.py",
        "ledger.db",
    ]:
        assert dockerignore.excluded(path), path
    for path in ["src/a2i_worker/__init__.py", "pyproject.toml", "README.md"]:
        assert not dockerignore.excluded(path), path


def test_parser_reads_continuations_comments_and_args() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS one\n"
        "RUN a \\\n"
        "  # inner comment\n"
        "  && b\n"
        "FROM one\n"
        'ENTRYPOINT ["x", "y"]\n'
        "CMD run --fast\n"
    )
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert [s.base for s in parsed.stages] == ["python:3.11-slim", "one"]
    assert parsed.stage("one").instructions[0].raw == "a && b"
    assert parsed.final.last("ENTRYPOINT").exec_form == ["x", "y"]  # type: ignore[union-attr]
    assert parsed.final.last("CMD").exec_form is None  # type: ignore[union-attr]


def test_dockerignore_matching_rules() -> None:
    ignore = parse_dockerignore("**/*.pyc\ndocs\n!docs/keep.md\n")
    assert ignore.excluded("a/b/c.pyc")
    assert ignore.excluded("c.pyc")
    assert ignore.excluded("docs/other.md")
    assert not ignore.excluded("docs/keep.md")
    assert not ignore.excluded("src/a.py")
