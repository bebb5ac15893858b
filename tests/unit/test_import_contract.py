"""The architecture's arrows, read from the source: which package may import which.

config <- control <- mediaserver -> transcode -> config (docs: ARCHITECTURE.md). The control
plane knows nothing of media bytes; transcode knows neither side; mediaserver reaches the
control plane's HTTP handlers only where the node builds the app; the protocol packages
under mediaserver (rtmp, whip) never import each other. Imports inside functions and
under TYPE_CHECKING count too: an arrow is an arrow, however late it is drawn.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "control", "mediaserver", "transcode")
PROTOCOLS = ("rtmp", "whip")
# The composition root: the one module that builds the API app for the node.
BUILDS_THE_APP = frozenset({"mediaserver/node.py"})


def _modules(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = list(path.relative_to(root).parent.parts)  # the package the module is in
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from mediaserver import rtmp` names a package too
                yield node.lineno, f"{module}.{alias.name}"


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(package: str, forbidden: tuple[str, ...], *,
                skip: frozenset[str] = frozenset(), root: Path = ROOT) -> list[str]:
    found = []
    for path in _modules(package, root):
        name = str(path.relative_to(root))
        if name in skip:
            continue
        for line, module in _imports(path, root):
            if any(_is(module, prefix) for prefix in forbidden):
                found.append(f"{name}:{line} imports {module}")
    return sorted(set(found))


def test_every_package_is_read() -> None:
    for package in PACKAGES:
        assert _modules(package), f"no modules found under {package}/"
    assert any(True for _ in _imports(ROOT / "mediaserver" / "node.py"))


@pytest.mark.parametrize(("package", "forbidden"), [
    ("config", ("control", "mediaserver", "transcode")),
    ("control", ("mediaserver", "transcode")),
    ("transcode", ("control", "mediaserver")),
])
def test_the_layers_import_only_downwards(package: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(package, forbidden) == []


def test_mediaserver_reaches_the_api_only_where_the_node_builds_it() -> None:
    assert _violations("mediaserver", ("control.api", "control.http"), skip=BUILDS_THE_APP) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_packages_do_not_import_each_other(protocol: str) -> None:
    others = tuple(f"mediaserver.{p}" for p in PROTOCOLS if p != protocol)
    assert _violations(f"mediaserver/{protocol}", others) == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The reader resolves absolute, relative and late imports alike."""
    (tmp_path / "transcode" / "storage").mkdir(parents=True)
    (tmp_path / "transcode" / "storage" / "_contract_probe.py").write_text(
        "def late() -> None:\n"
        "    from control.models import User\n"
        "from ...mediaserver import node\n"
        "from . import backend\n"
    )
    found = _violations("transcode", ("control", "mediaserver"), root=tmp_path)
    assert found == [
        "transcode/storage/_contract_probe.py:2 imports control.models",
        "transcode/storage/_contract_probe.py:2 imports control.models.User",
        "transcode/storage/_contract_probe.py:3 imports mediaserver",
        "transcode/storage/_contract_probe.py:3 imports mediaserver.node",
    ]
