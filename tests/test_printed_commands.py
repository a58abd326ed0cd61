"""Every ``sso`` command the project prints works when typed as printed.

The commands are read from the texts themselves, so a command added to a text later is tested
without touching this file: the Markdown of the README, ``docs/``, ``keys/`` and ``bench/``
(fenced blocks and inline code), the banner ``sso demo`` prints, and the mail templates. Each
runs in a fresh process with only what a user's shell has (``PATH`` with the ``sso`` command on
it, ``HOME``, and what the text itself sets), from the checkout, in a second terminal beside
``make run``: against an instance set up by ``sso demo``'s own set-up, whose settings file is
the only way the commands learn the demo's settings. ``SSO_INSTANCE_PATH`` stands for the
checkout's ``instance/`` folder, which the test must not touch.

How the texts are read:

* A fenced block is typed line by line, each line after the ones above it; an inline command,
  a banner line and a mail line each stand alone. Every one starts from the state the set-up
  left (the database file is restored, the embedded Redis emptied).
* ``[...]`` is optional: the command runs without the optional parts and with them.
  ``a | b`` and ``--on/--off`` are alternatives: each runs.
* Placeholders (``CLIENT_ID``, ``LOGIN``, ``<client_id>``, ...) stand for demo data that suits
  the command (:data:`PLACEHOLDERS`, :data:`PLACEHOLDERS_BY_COMMAND`).
* Inline code that is not a whole command (``sso apps approve`` in a sentence, a synopsis with
  ``...`` or options without values) is a mention: its command and options must exist. A
  fenced block, the banner and the mails print commands to type: they must be whole.
* Commands that cannot run here are in :data:`NOT_RUN` with the reason; their mentions are
  still checked.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import redis

from sso.cli import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SSO = Path(sys.executable).with_name("sso")
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "keys" / "README.md", ROOT / "bench" / "README.md"]
MAIL_TEMPLATES = sorted((ROOT / "templates" / "mail").glob("*.html"))

#: What a placeholder in a printed command stands for, in the demo's data.
PLACEHOLDERS = {
    "<client_id>": "crm",
    "CLIENT_ID": "inventory",
    "ID": "crm",
    "LOGIN": "alice",
    "ROLE": "clerk",
    "MESSAGE_ID": "<event id>",  # an event to ERP, filed by the set-up
    "<LAN address>": "127.0.0.1",
    "<this machine's LAN address>": "127.0.0.1",
}
#: Where a placeholder needs a user in a particular state.
PLACEHOLDERS_BY_COMMAND = {
    ("users", "approve"): {"LOGIN": "applicant"},  # a self-registration awaiting approval
    ("users", "deny"): {"LOGIN": "applicant2"},  # another one
    ("users", "resend-invite"): {"LOGIN": "newhire"},  # invited, not active yet
    ("apps", "deny"): {"LOGIN": "trainee"},  # no account in the app
    ("apps", "revoke"): {"LOGIN": "sales"},  # provisioned in inventory by the seed
}
#: Values only the set-up knows; "1" while the texts are read.
RUNTIME = {"<event id>": "1"}
#: Jinja variables of the mail templates, as placeholders.
MAIL_VARIABLES = {"client_id": "CLIENT_ID", "username": "LOGIN"}

#: Printed commands that cannot run in a test, and why. Their options are still checked.
NOT_RUN = {
    ("demo",): "serves until stopped; tests/interop/test_demo_command.py runs it",
    ("demo-app",): "serves until stopped; sso demo starts three (test_demo_command.py)",
    ("serve",): "serves until stopped; tests/test_image.py starts the server",
    ("db", "revision"): "writes a new migration file into sso/migrations/versions",
}

#: Answers to a password prompt (a command printed without --password asks for one).
PROMPT_INPUT = "Printed-Command-7!\nPrinted-Command-7!\n"

COMMAND_START = re.compile(r"^(?:[A-Z][A-Z0-9_]*=(?:<[^<>]*>|\S)+\s+)*(?:\.venv/bin/)?sso\s")
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")
MAIL_COMMAND = re.compile(r"\bsso [a-z][^<\n]*")


@dataclass(frozen=True)
class Printed:
    """Commands as a text prints them, typed in this order."""

    where: str
    commands: tuple[str, ...]
    #: Blocks, the banner and mails print commands to type; inline code may mention one.
    must_be_whole: bool


def _markdown(path: Path) -> Iterator[Printed]:
    text = path.read_text(encoding="utf-8")
    where = str(path.relative_to(ROOT))
    for block in FENCE.finditer(text):
        lines = [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()]
        commands = tuple(line for line in lines if COMMAND_START.match(line))
        if commands:
            line = text.count("\n", 0, block.start()) + 1
            yield Printed(f"{where}:{line}", commands, must_be_whole=True)
    prose = FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), text)
    for code in INLINE.finditer(prose):
        command = " ".join(code.group(1).replace("\\|", "|").split())
        if COMMAND_START.match(command):
            line = prose.count("\n", 0, code.start()) + 1
            yield Printed(f"{where}:{line}", (command,), must_be_whole=False)


def _banner() -> Iterator[Printed]:
    from sso.demo.cli import _banner

    for line in _banner("http://127.0.0.1:5000").splitlines():
        if COMMAND_START.match(line.strip()):
            yield Printed("sso demo banner", (line.strip(),), must_be_whole=True)


def _mail_placeholder(variable: re.Match[str]) -> str:
    name = variable.group(1)
    assert name in MAIL_VARIABLES, f"add the template variable {name} to MAIL_VARIABLES"
    return MAIL_VARIABLES[name]


def _mails() -> Iterator[Printed]:
    for path in MAIL_TEMPLATES:
        for found in sorted(set(MAIL_COMMAND.findall(path.read_text(encoding="utf-8")))):
            command = re.sub(r"\{\{\s*(\w+)\s*\}\}", _mail_placeholder, found.strip())
            yield Printed(str(path.relative_to(ROOT)), (command,), must_be_whole=True)


def printed_commands() -> list[Printed]:
    found = [*itertools.chain.from_iterable(_markdown(p) for p in MARKDOWN), *_banner(),
             *_mails()]
    unique: dict[tuple[str, ...], Printed] = {}
    for printed in found:  # the same commands printed twice run once, as strictly as asked
        first = unique.setdefault(printed.commands, printed)
        if first is not printed:
            unique[printed.commands] = Printed(
                f"{first.where} & {printed.where}", first.commands,
                first.must_be_whole or printed.must_be_whole)
    return list(unique.values())


# From printed text to argument lists.


@dataclass(frozen=True)
class Typed:
    """One command as a user types it: the variables the text sets, and sso's arguments."""

    env: tuple[tuple[str, str], ...]
    args: tuple[str, ...]
    #: Not a whole command: "..." stands for more, or alternatives are spelled out.
    synopsis: bool


def _substitute(text: str) -> str:
    def angle(match: re.Match[str]) -> str:
        assert match.group(0) in PLACEHOLDERS, f"add {match.group(0)} to PLACEHOLDERS"
        return PLACEHOLDERS[match.group(0)]

    return re.sub(r"<[^<>]+>", angle, text)


def _variants(command: str, optional: bool) -> list[Typed]:
    """The commands ``command`` stands for: its alternatives, with or without its ``[...]``."""
    words = shlex.split(_substitute(command), comments=True)
    env = []
    while words and re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env.append((name, value))
    assert words and words[0] in ("sso", ".venv/bin/sso"), command
    slots: list[list[str]] = []
    depth, joined = 0, False
    for word in words[1:]:
        opening = word.startswith("[")
        word = word.lstrip("[")
        closing = word.endswith("]")
        word = word.rstrip("]")
        depth += opening
        if word == "|":
            joined = True
            continue
        inside_optional = depth > 0
        depth -= closing
        if inside_optional and not optional:
            continue
        alternatives = word.split("|") if "|" in word else (
            word.split("/") if word.startswith("--") and "/--" in word else [word])
        if joined:
            slots[-1].extend(alternatives)
            joined = False
        else:
            slots.append(alternatives)
    typed = []
    for choice in itertools.product(*slots):
        args = tuple(PLACEHOLDERS_BY_COMMAND.get(tuple(choice[:2]), {}).get(word)
                     or PLACEHOLDERS.get(word, word) for word in choice)
        synopsis = any(word in ("...", "…") for word in choice) or any(
            value in ("...", "…") for _name, value in env)
        typed.append(Typed(tuple(env), args, synopsis))
    return typed


def _command_of(args: tuple[str, ...]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The command path ``args`` names, the command, and the arguments left for it."""
    context = click.Context(cli, info_name="sso")
    command: click.Command = cli
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        found = command.get_command(context, name)
        assert found is not None, f"there is no command `sso {' '.join([*path, name])}`"
        path.append(name)
        command = found
        context = click.Context(command, parent=context, info_name=name)
    return tuple(path), command, rest


def _problem(args: tuple[str, ...]) -> str | None:
    """Why ``args`` is not a whole command (click's own message), or None."""
    path, command, rest = _command_of(tuple(_runtime(word, RUNTIME) for word in args))
    if "--help" in rest:
        return None
    if isinstance(command, click.Group):
        return f"`sso {' '.join(path)}` needs a subcommand"
    # Click would take the next option's name as a value; a synopsis means "a value here".
    takes_value = {name for param in command.params if isinstance(param, click.Option)
                   and not param.is_flag and not param.count for name in param.opts}
    options = {name for param in command.params for name in getattr(param, "opts", ())}
    for word, following in itertools.pairwise([*rest, None]):
        if word in takes_value and (following is None or following in options):
            return f"option {word} has no value"
    prompted = [option for option in command.params if isinstance(option, click.Option)
                and option.prompt and not set(option.opts) & set(rest)]
    answers = [word for option in prompted for word in (option.opts[0], "answered")]
    parent = click.Context(cli, info_name="sso")
    try:
        command.make_context(path[-1], [*rest, *answers], parent=parent)
    except click.ClickException as error:
        return error.format_message()
    return None


def _runtime(word: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        word = word.replace(placeholder, value)
    return word


def _options_exist(args: tuple[str, ...]) -> None:
    path, command, rest = _command_of(args)
    known = {name for param in command.params
             for name in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))}
    unknown = [word for word in rest if word.startswith("-") and word not in known]
    assert not unknown, f"`sso {' '.join(path)}` has no option {', '.join(unknown)}"


def _not_run(args: tuple[str, ...]) -> str | None:
    path = _command_of(args)[0]
    return next((why for prefix, why in NOT_RUN.items() if path[:len(prefix)] == prefix), None)


@dataclass(frozen=True)
class Run:
    where: str
    #: Runs of the printed commands, in order; more than one when there are alternatives.
    sequences: tuple[tuple[Typed, ...], ...]


def _plan() -> tuple[list[Run], list[tuple[str, Typed, str]]]:
    """The runs to make, and the commands only checked (with why)."""
    runs: list[Run] = []
    checked: list[tuple[str, Typed, str]] = []
    for printed in printed_commands():
        has_optional = any("[" in command for command in printed.commands)
        sequences = []
        for optional in (False, True) if has_optional else (False,):
            per_command = [_variants(command, optional) for command in printed.commands]
            whole: list[list[Typed]] = []
            for command, variants in zip(printed.commands, per_command, strict=True):
                kept = []
                for typed in variants:
                    why = "a synopsis" if typed.synopsis else _not_run(typed.args)
                    problem = None if why else _problem(typed.args)
                    if why or problem:
                        if printed.must_be_whole and not why:
                            pytest.fail(f"{printed.where}: `{command}` cannot run: {problem}")
                        checked.append((printed.where, typed, why or f"a mention ({problem})"))
                    else:
                        kept.append(typed)
                whole.append(kept)
            # A block's lines run in order (the first of each line's alternatives); any other
            # alternative runs after the lines above it.
            sequences.append(tuple(line[0] for line in whole if line))
            for index, kept in enumerate(whole):
                before = tuple(line[0] for line in whole[:index] if line)
                sequences += [(*before, typed) for typed in kept[1:]]
        unique = tuple(dict.fromkeys(sequence for sequence in sequences if sequence))
        if unique:
            runs.append(Run(printed.where, unique))
    return runs, checked


RUNS, CHECKED = _plan()


def test_the_texts_print_commands() -> None:
    """The reading above finds what it should (a reader that finds nothing tests nothing)."""
    where = {place.split(":")[0] for run in RUNS for place in run.where.split(" & ")}
    assert {"README.md", "docs/apps.md", "docs/accounts.md", "sso demo banner",
            "templates/mail/app_access_requested.html"} <= where
    assert any(typed.args[:2] == ("apps", "approve") for run in RUNS
               for sequence in run.sequences for typed in sequence)
    mentioned = {_command_of(typed.args)[0] for _where, typed, _why in CHECKED}
    for prefix in NOT_RUN:  # an entry no text prints any more goes
        assert any(path[:len(prefix)] == prefix for path in mentioned), prefix


@pytest.mark.parametrize(("where", "typed", "why"), CHECKED,
                         ids=[f"{w} sso {' '.join(t.args)}" for w, t, _ in CHECKED])
def test_mentioned_commands_and_options_exist(where: str, typed: Typed, why: str) -> None:
    _options_exist(typed.args)


# Running them.


def _user_environment(home: Path, instance: Path) -> dict[str, str]:
    env = {"PATH": f"{SSO.parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home),
           "SSO_INSTANCE_PATH": str(instance)}
    # How this Python caches bytecode changes no command; keep the test run's choice.
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _sso(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(SSO), *args], cwd=ROOT, env=env, input=PROMPT_INPUT,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"sso {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@dataclass
class DemoInstance:
    """An instance as ``sso demo`` sets it up, and a copy of its database to go back to."""

    home: Path
    instance: Path
    saved: Path
    values: dict[str, str]

    def restore(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            target = self.instance / f"sso.sqlite3{suffix}"
            target.unlink(missing_ok=True)
            if (self.saved / target.name).exists():
                shutil.copy2(self.saved / target.name, target)
        socket = self.instance / "redis.sock"
        if socket.exists():
            redis.Redis(unix_socket_path=str(socket)).flushall()

    def clone(self, home: Path) -> DemoInstance:
        """The same set-up in another folder, as a second checkout's ``make run`` would have
        it: the instance and keys copied, the settings file naming the copy's keys, and an
        embedded Redis of its own (started by the first command that needs it)."""
        instance = home / "instance"
        if (self.home / "keys").exists():  # signing keys live in the database now
            shutil.copytree(self.home / "keys", home / "keys")
        shutil.copytree(self.instance, instance, ignore=shutil.ignore_patterns("redis.*"))
        settings = instance / "settings.env"
        settings.write_text(settings.read_text().replace(str(self.home), str(home)))
        return DemoInstance(home, instance, self.saved, self.values)

    def stop(self) -> None:
        from sso.embedded import stop_redis

        stop_redis(str(self.instance))


@pytest.fixture(scope="module")
def demo_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoInstance]:
    home = tmp_path_factory.mktemp("home")
    instance = home / "instance"
    env = _user_environment(home, instance)
    set_up = subprocess.run(
        [sys.executable, "-c", "from sso.demo.cli import set_up; set_up(5000)"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        # The demo's own set-up, with the keys beside the instance instead of the checkout's
        # keys/ and the cheap argon2 setting of the tests: both land in the settings file.
        env={**env, "SSO_KEYS_DIR": str(home / "keys"), "SSO_ARGON2_MEMORY_KIB": "8192",
             "SSO_ARGON2_TIME_COST": "1"},
    )
    assert set_up.returncode == 0, set_up.stdout + set_up.stderr
    try:
        # Two self-registrations waiting for approval, for `sso users approve|deny LOGIN`.
        pending = subprocess.run([sys.executable, "-c", (
            "from sso import create_app\n"
            "from sso.accounts.service import create_user\n"
            "from sso.extensions import db\n"
            "from sso.users.models import UserStatus\n"
            "with create_app().app_context():\n"
            "    for name in ('applicant', 'applicant2'):\n"
            "        create_user(name, email=f'{name}@example.com', password='Pending-User-7!',\n"
            "                    status=UserStatus.PENDING)\n"
            "    db.session.commit()\n")], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=300)
        assert pending.returncode == 0, pending.stdout + pending.stderr
        # An event to ERP (whose app is not running, so it waits for a retry).
        _sso(env, "apps", "approve", "erp", "warehouse")
        message_id = _sso(env, "apps", "events", "erp").stdout.split()[0]
        saved = home / "saved"
        saved.mkdir()
        for path in instance.glob("sso.sqlite3*"):
            shutil.copy2(path, saved / path.name)
        yield DemoInstance(home, instance, saved, {"<event id>": message_id})
    finally:
        DemoInstance(home, instance, home, {}).stop()


def _perform(run: Run, demo: DemoInstance) -> list[str]:
    """Type each of the run's sequences from the set-up's state; what failed, with output."""
    failures = []
    for sequence in run.sequences:
        demo.restore()
        for typed in sequence:
            env = {**_user_environment(demo.home, demo.instance), **dict(typed.env)}
            args = [_runtime(word, demo.values) for word in typed.args]
            result = _sso(env, *args, check=False)
            if result.returncode != 0:
                failures.append(f"sso {shlex.join(args)}\n{result.stdout}{result.stderr}")
                break
    return failures


@pytest.fixture(scope="module")
def outcomes(demo_instance: DemoInstance, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[Run, list[str]]]:
    """Every run's failures. The runs are independent, so a few copies of the instance take
    them in parallel (each command is a whole process that builds the app)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    clones = [demo_instance.clone(tmp_path_factory.mktemp("clone")) for _ in range(workers - 1)]
    free: queue.Queue[DemoInstance] = queue.Queue()
    for demo in (demo_instance, *clones):
        free.put(demo)

    def perform(run: Run) -> tuple[Run, list[str]]:
        demo = free.get()
        try:
            return run, _perform(run, demo)
        finally:
            free.put(demo)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield dict(pool.map(perform, RUNS))
    finally:
        for clone in clones:
            clone.stop()


@pytest.mark.parametrize("run", RUNS, ids=[run.where for run in RUNS])
def test_printed_commands_work_as_printed(run: Run, outcomes: dict[Run, list[str]]) -> None:
    assert not outcomes[run], f"{run.where}:\n" + "\n".join(outcomes[run])
