"""The passage's shape, held against the code: every step of the table and every door (a call
of ``finish``, ``abort`` or ``sign_out``) has a Chromium test, and the layers keep their
imports pointing down (DESIGN.md §2). Read from the source, so a door or step added tomorrow
cannot be forgotten."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SSO = ROOT / "sso"
TESTS = ROOT / "tests"
EXITS = {"finish", "abort", "sign_out"}


def _python(folder: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def _door_names(node: ast.expr) -> set[str]:
    """The names a ``door=`` argument can take: a string, or either side of a conditional."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _door_names(node.body) | _door_names(node.orelse)
    raise AssertionError(f"a door must be named by a string literal: {ast.unparse(node)}")


def doors_in_code() -> dict[str, str]:
    """Each door named at a ``passage.finish/abort/sign_out(..., door=...)`` call."""
    found: dict[str, str] = {}
    for path, tree in _python(SSO):
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in EXITS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "passage"):
                door = [k.value for k in node.keywords if k.arg == "door"]
                assert door, f"{path}:{node.lineno} leaves the passage without naming its door"
                for name in _door_names(door[0]):
                    found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def marks_in_browser_tests(mark: str) -> set[str]:
    """Names given to ``pytest.mark.<mark>(...)`` on tests of browser test modules."""
    named: set[str] = set()
    for _path, tree in _python(TESTS):
        is_browser_module = any(
            isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                              for t in n.targets)
            and "browser" in ast.unparse(n.value) for n in tree.body)
        if not is_browser_module:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call)
                        and ast.unparse(decorator.func) == f"pytest.mark.{mark}"):
                    named |= _strings(decorator)
    return named


def test_every_door_has_a_browser_test() -> None:
    doors = doors_in_code()
    assert {"password", "totp", "qr-desktop", "consent", "cancel", "logout"} <= set(doors)
    missing = {door: where for door, where in doors.items()
               if door not in marks_in_browser_tests("door")}
    assert not missing, f"doors without a Chromium test (pytest.mark.door): {missing}"


def test_every_step_has_a_browser_test() -> None:
    from sso.signin import STEPS

    steps = {step.name for step in STEPS}
    missing = steps - marks_in_browser_tests("step")
    assert not missing, f"steps without a Chromium test (pytest.mark.step): {missing}"


def test_no_door_is_marked_that_the_code_does_not_have() -> None:
    stale = marks_in_browser_tests("door") - set(doors_in_code())
    assert not stale, f"tests name doors the code no longer has: {stale}"


def _method_packages() -> tuple[str, ...]:
    from sso.signin import METHODS as listed

    return listed


# The layers (DESIGN.md §2): nothing imports up, and method packages use only the protocol's
# public surface.

FOUNDATION = {"config", "extensions", "security", "dbtypes", "i18n", "audit", "ratelimit",
              "outbox", "web", "errors", "embedded", "migrate", "notify", "driversql"}
LOWER = {"users": set(), "sessions": {"users"}, "flow": {"users", "sessions"}}
#: The method packages: those ``create_app`` loads from ``sso.signin.METHODS``, qrlogin and
#: the account's self-service pages.
METHODS = {name.rsplit(".", 1)[1] for name in _method_packages()} | {"qrlogin", "selfservice"}
PROTOCOL_PUBLIC = {"sso.oidc.public", "sso.oidc.protector"}


def _imports(package: str) -> Iterator[tuple[str, str, int]]:
    """(importing file, imported module, line) for every import of ``sso.*`` in a package."""
    folder = SSO / package
    paths = sorted(folder.rglob("*.py")) if folder.is_dir() else [SSO / f"{package}.py"]
    for path in paths:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    if path.name != "__init__.py":
                        base = base[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                names = [target + "." + alias.name for alias in node.names]
                for name in [target, *names]:
                    if name.startswith("sso."):
                        yield str(path.relative_to(ROOT)), name, node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("sso."):
                        yield str(path.relative_to(ROOT)), alias.name, node.lineno


def _package_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


@pytest.mark.parametrize("package", sorted(LOWER))
def test_lower_layers_import_nothing_above_them(package: str) -> None:
    allowed = FOUNDATION | LOWER[package] | {package}
    wrong = [(f, m, line) for f, m, line in _imports(package)
             if _package_of(m) not in allowed and m != "sso"]
    assert not wrong, f"{package} imports from above it: {wrong}"


def test_the_protocol_knows_no_sign_in_method() -> None:
    wrong = [(f, m, line) for f, m, line in _imports("oidc") if _package_of(m) in METHODS]
    assert not wrong, wrong


@pytest.mark.parametrize("package", sorted(METHODS))
def test_methods_use_only_the_protocols_public_surface(package: str) -> None:
    wrong = [(f, m, line) for f, m, line in _imports(package)
             if _package_of(m) == "oidc" and not any(m == p or m.startswith(p + ".")
                                                     for p in PROTOCOL_PUBLIC)]
    assert not wrong, f"{package} reaches into protocol internals: {wrong}"
