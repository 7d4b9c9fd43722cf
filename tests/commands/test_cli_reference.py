"""Every command and option of the command-line contract still exists, with the same meaning.

The contract is ``cli-reference.md`` beside this file: a verbatim copy of the project's
``shared/reference/cli.md`` (the names users, docs and scripts rely on; a test below keeps the copy
equal to it where the shared folder exists). Each documented invocation is parsed into its command
words, its positional values and its options, and checked against the Typer app:

* the command exists (or is in ``PENDING_COMMANDS``, which only excuses its absence);
* each option exists under that name; one documented with a value takes a value, one documented
  bare (``[--vis]``) is a flag;
* each literal value documented for an option (``--transfer encoder|all|none``) or a positional
  (``synth {brats,lits,...}``) is accepted: among the parameter's choices, named in its help, or a
  registered plugin of the kind the option picks.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer

from radiossl import registry
from radiossl.cli import app

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "cli-reference.md"
SHARED_REFERENCE = next(
    (
        folder / "shared" / "reference" / "cli.md"
        for folder in HERE.parents
        if (folder / "shared" / "reference").is_dir()
    ),
    HERE.parents[2] / "shared" / "reference" / "cli.md",
)

# Documented commands that radiossl does not have yet (other work adds them). Listing one here only
# excuses its absence: as soon as the command exists, its options are checked like all others.
PENDING_COMMANDS: dict[tuple[str, ...], str] = {}  # none: every documented command exists


# The stage commands: each takes the options the contract lists as "common to every stage command".
STAGE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("preprocess",),
    ("kmeans", "fit"),
    ("kmeans", "predict"),
    ("pretrain",),
    ("finetune",),
    ("evaluate",),
)
# Documented common options a stage command does not have, and why (a known gap, not an oversight).
KNOWN_GAPS: dict[tuple[tuple[str, ...], str], str] = {
    (("preprocess",), "--device"): "preprocessing resamples on the CPU; its config has no device setting",
}

# Options whose documented values are plugin names: the values must be registered in this group.
PLUGIN_OPTIONS: dict[str, str] = {
    "--method": "radiossl.pretext",
    "--task": "radiossl.tasks",
    "--dataset": "radiossl.datasets",
}

OPTION = re.compile(r"--[a-z][a-z0-9-]*")
WORD = re.compile(r"[a-z][a-z0-9-]*")


@dataclass
class Documented:
    """One documented use of an option: whether it takes a value, and the literal values shown."""

    name: str
    takes_value: bool
    values: set[str] = field(default_factory=set)


@dataclass
class Invocation:
    """One documented command line: command words, positional values and options."""

    words: tuple[str, ...]
    positionals: list[set[str] | None] = field(default_factory=list)  # None: a placeholder (PATH, FILE)
    options: list[Documented] = field(default_factory=list)
    source: str = ""


def literal_values(text: str) -> set[str]:
    """The literal values of ``auto|PATH`` or ``{brats,lits,<plugin>}`` (placeholders and ``<...>`` left out)."""
    parts = re.split(r"[|,]", text.strip("{}[]"))
    return {part for part in parts if re.fullmatch(r"[a-z][a-z0-9_-]*", part)}


def _is_placeholder(token: str) -> bool:
    return not literal_values(token) and not token.startswith("-") and token != "..."


def code_lines(markdown: str) -> list[str]:
    """The lines of the fenced code blocks, continuation lines (indented) joined to the line they continue."""
    lines: list[str] = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.DOTALL):
        for line in block.splitlines():
            if line[:1].isspace() and lines:
                lines[-1] += " " + line.strip()
            elif line.strip():
                lines.append(line.strip())
    return lines


def parse_invocations(markdown: str) -> list[Invocation]:
    """Every documented invocation: alternatives (`` | ``, ``;``) and ``pretrain/finetune`` split up."""
    found: list[Invocation] = []
    for line in code_lines(markdown):
        line = re.sub(r"\s{2,}\(.*\)$", "", line)  # a trailing "(comment)"
        for text in re.split(r"\s\|\s|;", line):
            tokens = text.split()
            if tokens and tokens[0] == "radiossl":
                tokens = tokens[1:]
            if not tokens:
                continue
            for first in tokens[0].split("/"):
                found.append(_parse_tokens([first, *tokens[1:]], text.strip()))
    return found


def _parse_tokens(tokens: list[str], source: str) -> Invocation:
    words: list[str] = []
    rest = iter(tokens)
    token = next(rest, None)
    while token is not None and WORD.fullmatch(token) and (not words or _could_be_subcommand(words, token)):
        words.append(token)
        token = next(rest, None)
    invocation = Invocation(tuple(words), source=source)
    remaining = ([token] if token is not None else []) + list(rest)
    index = 0
    while index < len(remaining):
        raw = remaining[index]
        bare = raw.strip("[]")
        if OPTION.fullmatch(bare):
            following = remaining[index + 1] if index + 1 < len(remaining) and not raw.endswith("]") else None
            value = following.rstrip("]") if following is not None else None
            if value == "..." and any(seen.name == bare for seen in invocation.options):
                index += 2  # ``[--weights ...]``: the option documented before, repeated
                continue
            takes_value = value is not None and not value.startswith(("-", "[")) and value != "..."
            documented = Documented(bare, takes_value, literal_values(value) if takes_value and value else set())
            invocation.options.append(documented)
            index += 2 if takes_value else 1
            continue
        if bare and bare != "..." and not invocation.options:
            invocation.positionals.append(literal_values(bare) or None)
        index += 1
    return invocation


def _could_be_subcommand(words: list[str], token: str) -> bool:
    """After the first word: a further command word (``kmeans fit``), not a positional value (``synth nnssl``)."""
    command = _find_command(tuple(words))
    if command is not None:
        return hasattr(command, "commands")  # a group takes a command, a command its positional values
    return (*words, token) in PENDING_COMMANDS


def _root() -> Any:
    return typer.main.get_command(app)


def _find_command(words: tuple[str, ...], root: Any = None) -> Any:
    command = root if root is not None else _root()
    for word in words:
        children = getattr(command, "commands", None)
        if not children or word not in children:
            return None
        command = children[word]
    return command


def _option(command: Any, name: str) -> Any:
    for param in command.params:
        if name in (*param.opts, *param.secondary_opts) and getattr(param, "param_type_name", "") == "option":
            return param
    return None


def _choices(param: Any) -> set[str] | None:
    """The values a parameter restricts itself to (click Choice or an Enum annotation), else None."""
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        return {str(getattr(c, "value", c)) for c in choices}
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {str(member.value) for member in annotation}
    return None


def _accepts(param: Any, value: str, plugin_group: str | None) -> bool:
    choices = _choices(param)
    if choices is not None:
        return value in choices
    if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", param.help or ""):
        return True
    return plugin_group is not None and value in registry.names(plugin_group)


def contract_problems(invocations: list[Invocation], root: Any = None) -> list[str]:
    """What the app does not do of what ``invocations`` document (empty: everything)."""
    problems: list[str] = []
    for invocation in invocations:
        label = "radiossl " + " ".join(invocation.words)
        command = _find_command(invocation.words, root)
        if command is None:
            if invocation.words not in PENDING_COMMANDS:
                problems.append(f"{label}: no such command (documented as `{invocation.source}`)")
            continue
        arguments = [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]
        if len(arguments) < len(invocation.positionals):
            problems.append(f"{label}: takes {len(arguments)} positional argument(s), documented with more")
        for param, values in zip(arguments, invocation.positionals, strict=False):
            for value in sorted(values or ()):
                if not _accepts(param, value, None):
                    problems.append(f"{label}: positional {param.name} does not accept {value!r}")
        for documented in invocation.options:
            problems.extend(_option_problems(label, command, documented))
    return problems


def _option_problems(label: str, command: Any, documented: Documented) -> list[str]:
    param = _option(command, documented.name)
    if param is None:
        return [f"{label}: option {documented.name} is missing"]
    if documented.takes_value and param.is_flag:
        return [f"{label}: {documented.name} is documented with a value but is a flag"]
    if not documented.takes_value and not param.is_flag:
        return [f"{label}: {documented.name} is documented as a flag but takes a value"]
    group = PLUGIN_OPTIONS.get(documented.name)
    return [
        f"{label}: {documented.name} does not accept {value!r}"
        for value in sorted(documented.values)
        if not _accepts(param, value, group)
    ]


def common_options(markdown: str) -> list[Documented]:
    """The options of the "Common to every stage command" section, each as first shown there."""
    section = markdown.split("## Common to every stage command", 1)[1].split("\n## ", 1)[0]
    options: dict[str, Documented] = {}
    for name, value in re.findall(r"`(--[a-z-]+)(?: ([^`]+))?`", section):
        first = value.split()[0] if value else ""
        options.setdefault(name, Documented(name, bool(first), literal_values(first) if first else set()))
    return list(options.values())


def test_the_copy_is_the_shared_reference() -> None:
    if not SHARED_REFERENCE.is_file():
        pytest.skip(f"{SHARED_REFERENCE} is not part of this checkout")
    assert REFERENCE.read_text() == SHARED_REFERENCE.read_text(), f"copy {SHARED_REFERENCE} to {REFERENCE}"


def test_the_reference_is_parsed() -> None:
    """The parser sees the contract as written (so the checks below check something)."""
    invocations = parse_invocations(REFERENCE.read_text())
    by_words: dict[tuple[str, ...], Invocation] = {}
    for inv in invocations:
        by_words.setdefault(inv.words, inv)  # the first use of each command
    assert {("kmeans", "fit"), ("kmeans", "predict"), ("config", "validate"), ("checkpoint", "export-encoder")} <= set(
        by_words
    )
    resume = [opt for inv in invocations if inv.words == ("finetune",) for opt in inv.options if opt.name == "--resume"]
    assert resume and all(opt.takes_value and opt.values == {"auto"} for opt in resume)
    vis = next(opt for opt in by_words[("pretrain",)].options if opt.name == "--vis")
    assert not vis.takes_value
    synth = [inv for inv in invocations if inv.words == ("synth",)]
    assert {"brats", "nnunet"} <= (synth[0].positionals[0] or set()) and synth[1].positionals == [{"nnssl"}]
    assert by_words[("checkpoint", "inspect")].positionals == [None]
    assert sum(len(inv.options) for inv in invocations) >= 40
    assert [opt.name for opt in common_options(REFERENCE.read_text())] == [
        "--config",
        "--set",
        "--seed",
        "--device",
        "--workers",
    ]


def test_every_documented_command_and_option_exists() -> None:
    problems = contract_problems(parse_invocations(REFERENCE.read_text()))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("words", STAGE_COMMANDS, ids=" ".join)
def test_stage_commands_take_the_common_options(words: tuple[str, ...]) -> None:
    command = _find_command(words)
    assert command is not None
    problems = [
        problem
        for documented in common_options(REFERENCE.read_text())
        if (words, documented.name) not in KNOWN_GAPS
        for problem in _option_problems("radiossl " + " ".join(words), command, documented)
    ]
    assert not problems, "\n".join(problems)


def test_a_renamed_or_changed_option_is_reported() -> None:
    """The check fails when an option is renamed, turned into a flag, or stops accepting a value."""
    fake = typer.Typer()

    @fake.command("finetune")
    def finetune(
        epoch: int = typer.Option(None, "--epoch"),  # renamed from --epochs
        resume: bool = typer.Option(False, "--resume"),  # a flag, documented as --resume auto|PATH
        transfer: str = typer.Option(None, "--transfer", help="encoder or all."),  # 'none' dropped
    ) -> None:
        """A finetune that breaks the contract."""

    @fake.command("other")
    def other() -> None:
        """Keeps ``fake`` a group."""

    documented = parse_invocations(
        "```\nradiossl finetune --epochs N --resume auto|PATH --transfer encoder|all|none\n```"
    )
    problems = contract_problems(documented, typer.main.get_command(fake))
    assert problems == [
        "radiossl finetune: option --epochs is missing",
        "radiossl finetune: --resume is documented with a value but is a flag",
        "radiossl finetune: --transfer does not accept 'none'",
    ]
