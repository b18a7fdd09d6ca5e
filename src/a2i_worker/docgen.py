"""The tables in the docs that are generated from the code: ``make docs`` rewrites them.

A generated section sits between two marker comments in a Markdown file::

    <!-- generated:settings (make docs; do not edit by hand) -->
    | variable | default | allowed | meaning |
    ...
    <!-- /generated:settings -->

:data:`SECTIONS` names each table and the function that renders it from the code:

- ``settings``: every ``A2I_WORKER_*`` variable with its default, what is allowed and what
  it means (:func:`a2i_worker.settings.settings_reference`);
- ``rejection-codes``: every ``rejection_code`` with its stage and cause
  (:data:`a2i_worker.rejection_codes.REJECTION_CODES`);
- ``metrics``: every Prometheus metric with its type, labels and help (:class:`Metrics`);
- ``cli``: every ``a2i-worker`` command with its arguments, options and help.

``python -m a2i_worker.docgen`` rewrites every section of :data:`FILES` in place;
``--check`` only reports stale files (exit status 1). tests/unit/test_docs_generated.py
runs the check, so a table cannot drift from the code unnoticed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FILES",
    "SECTIONS",
    "cli_table",
    "main",
    "metrics_table",
    "regenerate",
    "rejection_codes_table",
    "render",
    "settings_table",
    "stale_files",
]

#: Files (relative to the repository root) that hold generated sections.
FILES = ("README.md", "docs/messages.md", "docs/operations.md")

_BLOCK = re.compile(
    r"(?P<begin><!-- generated:(?P<name>[a-z-]+) \(make docs; do not edit by hand\) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- /generated:(?P=name) -->)",
    re.DOTALL,
)
_ANY_MARKER = re.compile(r"<!-- /?generated:")


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def settings_table() -> str:
    """Every setting, in declaration order."""
    from a2i_worker.settings_doc import settings_reference

    rows = [
        (f"`{r.variable}`", f"`{r.default}`" if r.default else "—", r.allowed, r.description)
        for r in settings_reference()
    ]
    return _table(("variable", "default", "allowed", "meaning"), rows)


def rejection_codes_table() -> str:
    """Every rejection code, in the order a message meets the checks."""
    from a2i_worker.rejection_codes import REJECTION_CODES

    rows = [(f"`{c.code}`", c.stage.value, c.cause) for c in REJECTION_CODES.values()]
    return _table(("code", "stage", "cause"), rows)


def _metric_rows() -> Iterator[tuple[str, str, str, str]]:
    from a2i_worker.metrics import Metrics

    for metric in Metrics().declared:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        yield f"`{metric.name}`", metric.kind, labels, metric.documentation


def metrics_table() -> str:
    """Every metric ``/metrics`` exposes, in definition order (histograms add
    ``_bucket``, ``_sum`` and ``_count`` series)."""
    return _table(("metric", "type", "labels", "meaning"), list(_metric_rows()))


def _commands() -> Iterator[tuple[list[str], Any]]:
    import typer.main

    from a2i_worker.cli import app

    root = typer.main.get_command(app)
    # Typer's own click classes: duck-typed, whichever click typer ships with.
    context = type(root).context_class

    def walk(command: Any, path: list[str], parent: Any) -> Iterator[tuple[list[str], Any]]:
        ctx = context(command, info_name=path[-1], parent=parent)
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name], ctx)
        else:
            yield path, command

    yield from walk(root, ["a2i-worker"], None)


def cli_table() -> str:
    """Every command: synopsis, options, and the first paragraph of its help."""
    rows = []
    for path, command in _commands():
        words = list(path)
        options = []
        for param in command.params:
            if param.param_type_name == "argument":
                metavar = param.name.upper() if param.name else "ARG"
                words.append(metavar if param.required else f"[{metavar}]")
            elif not param.hidden:
                flag = max(param.opts, key=len)
                off = max(param.secondary_opts, key=len) if param.secondary_opts else ""
                options.append(f"`{flag}/{off}`" if off else f"`{flag}`")
        summary = (command.help or "").strip().split("\n\n")[0]
        rows.append((f"`{' '.join(words)}`", ", ".join(options) or "—", summary))
    return _table(("command", "options", "what it does"), rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "rejection-codes": rejection_codes_table,
    "metrics": metrics_table,
    "cli": cli_table,
}


def render(text: str, sections: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every generated section replaced by its current table.

    ValueError for a marker naming no section, or a begin marker without its end.
    """
    known = SECTIONS if sections is None else sections
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in known:
            raise ValueError(f"unknown generated section {name!r}")
        if name not in cache:
            cache[name] = known[name]()
        return f"{match['begin']}{cache[name]}\n{match['end']}"

    out = _BLOCK.sub(replace, text)
    markers = len(_ANY_MARKER.findall(text))
    if markers != 2 * len(_BLOCK.findall(text)):
        raise ValueError("a generated-section marker is malformed or has no partner")
    return out


def _paths(root: Path) -> list[Path]:
    return [root / name for name in FILES]


def stale_files(root: Path) -> list[Path]:
    """The files under ``root`` whose generated sections differ from the code."""
    stale = []
    for path in _paths(root):
        text = path.read_text(encoding="utf-8")
        if render(text) != text:
            stale.append(path)
    return stale


def regenerate(root: Path) -> list[Path]:
    """Rewrite the stale files under ``root``; returns them."""
    changed = stale_files(root)
    for path in changed:
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m a2i_worker.docgen [--check] [ROOT]`` (ROOT: the repository, default .)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    root = Path(rest[0]) if rest else Path.cwd()
    if check:
        stale = stale_files(root)
        for path in stale:
            sys.stderr.write(f"stale generated tables: {path} (run `make docs`)\n")
        return 1 if stale else 0
    for path in regenerate(root):
        sys.stdout.write(f"updated {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
