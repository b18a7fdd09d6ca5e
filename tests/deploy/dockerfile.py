"""A tiny Dockerfile and .dockerignore reader, enough to check the image's promises.

No Docker engine is available where the tests run, so the Dockerfile is checked as text:
instructions are split into stages, with line continuations, comments and parser
directives handled, ``ARG`` values substituted in ``FROM``, and each instruction's
arguments parsed as exec form (a JSON array) when they are one. It follows the reference
syntax (https://docs.docker.com/reference/dockerfile/) for what the project's
Dockerfile uses; it is not a general BuildKit front end.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DockerIgnore",
    "Dockerfile",
    "Instruction",
    "Stage",
    "parse_dockerfile",
    "parse_dockerignore",
    "read_dockerfile",
]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Instruction:
    """One instruction: upper-cased keyword, raw argument text, and the line it starts on."""

    keyword: str
    raw: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The arguments as a JSON array (exec form), or None for shell form."""
        text = self.raw.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None

    def flags(self) -> dict[str, str]:
        """Leading ``--name=value`` options (e.g. ``COPY --from=build``)."""
        out: dict[str, str] = {}
        for token in shlex.split(self.raw):
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            out[name] = value
        return out

    def words(self) -> list[str]:
        """Shell-split arguments without the leading ``--`` options."""
        tokens = shlex.split(self.raw)
        while tokens and tokens[0].startswith("--"):
            tokens.pop(0)
        return tokens


@dataclass
class Stage:
    """A build stage: its base image (ARGs substituted), optional name, and instructions."""

    base: str
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def position(self, keyword: str) -> int:
        """Index of the last ``keyword`` instruction in this stage, -1 if absent."""
        for pos in range(len(self.instructions) - 1, -1, -1):
            if self.instructions[pos].keyword == keyword:
                return pos
        return -1


@dataclass
class Dockerfile:
    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name_or_index: str) -> Stage:
        for st in self.stages:
            if st.name == name_or_index or str(st.index) == name_or_index:
                return st
        raise KeyError(name_or_index)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines (``\\`` at end of line); drop comments and blank lines."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#") and not buf:
            continue
        if stripped.startswith("#") and buf:
            continue  # comment lines inside a continuation are removed
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(part for part in buf if part).strip()
        buf = []
        if joined:
            out.append((start, joined))
    if buf:
        out.append((start, " ".join(buf).strip()))
    return out


def _substitute(value: str, args: dict[str, str]) -> str:
    return _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), ""), value)


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse Dockerfile text into parser directives, global ARGs and stages."""
    directives: dict[str, str] = {}
    for line in text.splitlines():
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, raw = line.partition(" ")
        instruction = Instruction(keyword.upper(), raw.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.words()
            base = _substitute(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=base, name=name, index=len(stages)))
            continue
        if not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {number}: only ARG may come before the first FROM")
            arg_name, _, default = instruction.raw.partition("=")
            global_args[arg_name.strip()] = default.strip()
            continue
        stages[-1].instructions.append(instruction)
    if not stages:
        raise ValueError("no FROM instruction")
    return Dockerfile(directives=directives, global_args=global_args, stages=stages)


@dataclass(frozen=True)
class DockerIgnore:
    """``.dockerignore`` rules: the last matching pattern wins; ``!`` re-includes."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is left out.

        As in Docker: a rule matches a path when its pattern matches the path or one of
        its parent directories, and the last matching rule decides.
        """
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        verdict = False
        for include_back, pattern in self.rules:
            if any(pattern.fullmatch(c) for c in candidates):
                verdict = not include_back
        return verdict


def _pattern_to_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append(pattern[i : end + 1])
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def parse_dockerignore(text: str) -> DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        include_back = stripped.startswith("!")
        body = stripped[1:].strip() if include_back else stripped
        body = body.strip("/")
        if body.startswith("./"):
            body = body[2:]
        rules.append((include_back, _pattern_to_regex(body)))
    return DockerIgnore(tuple(rules))


def read_dockerfile(path: Path) -> Dockerfile:
    return parse_dockerfile(path.read_text(encoding="utf-8"))
