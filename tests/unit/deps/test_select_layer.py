"""deps/select_layer.py: which locked packages (with their hashes) go into which dependency layer."""

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("select_layer", REPO_ROOT / "deps" / "select_layer.py")
select_layer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(select_layer)

LOCK = """\
# Locked runtime dependencies of the production image (from pyproject.toml).
# Regenerate: invoke lock
annotated-doc==0.0.7 \\
    --hash=sha256:0a30 \\
    --hash=sha256:6bc3
    # via fastapi
fastapi==0.165.0 \\
    --hash=sha256:896f
    # via production-control (pyproject.toml)

Jinja2==3.1.6 \\
    --hash=sha256:85ec
    # via
    #   fastapi
    #   production-control (pyproject.toml)
MarkupSafe==3.0.2 ; python_version >= "3.9" \\
    --hash=sha256:ee55
typing_extensions==4.15.0 \\
    --hash=sha256:f0fa
"""
ENTRIES = {
    "annotated-doc": "annotated-doc==0.0.7 \\\n    --hash=sha256:0a30 \\\n    --hash=sha256:6bc3",
    "fastapi": "fastapi==0.165.0 \\\n    --hash=sha256:896f",
    "jinja2": "Jinja2==3.1.6 \\\n    --hash=sha256:85ec",
    "markupsafe": 'MarkupSafe==3.0.2 ; python_version >= "3.9" \\\n    --hash=sha256:ee55',
    "typing-extensions": "typing_extensions==4.15.0 \\\n    --hash=sha256:f0fa",
}
LAYERS = """\
[[layer]]
name = "foundation"
packages = ["typing-extensions", "not-in-the-lock"]

[[layer]]
name = "templates"
packages = ["MarkupSafe", "jinja2"]
"""


def layers_toml(*groups: list[str]) -> str:
    return "".join(f'[[layer]]\nname = "g{i}"\npackages = {names!r}\n\n'.replace("'", '"') for i, names in enumerate(groups))


# -- parsing ---------------------------------------------------------------------------------------------
def test_lock_entries_keep_hash_lines_and_drop_comments() -> None:
    assert select_layer.lock_entries(LOCK) == ENTRIES


def test_lock_entries_of_an_empty_lock() -> None:
    assert select_layer.lock_entries("# only a comment\n\n") == {}


@pytest.mark.parametrize("line", [pytest.param("--index-url https://pypi.example/simple", id="pip-option"),
                                  pytest.param("-e ./local", id="editable")])
def test_lock_entries_reject_lines_that_are_not_requirements(line: str) -> None:
    with pytest.raises(ValueError, match="unreadable lock line"):
        select_layer.lock_entries(LOCK + line + "\n")


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        pytest.param("Jinja2", "jinja2", id="case"),
        pytest.param("jinja_2", "jinja-2", id="underscore-becomes-dash"),  # PEP 503; the docstring says jinja2
        pytest.param("typing_extensions", "typing-extensions", id="underscore"),
        pytest.param("zope.interface", "zope-interface", id="dot"),
        pytest.param("Foo-_.Bar", "foo-bar", id="separator-run"),
    ],
)
def test_normalize(name: str, normalized: str) -> None:
    assert select_layer.normalize(name) == normalized


def test_groups_are_normalized_and_named() -> None:
    toml = LAYERS + '[[layer]]\npackages = ["Zope.Interface"]\n'
    assert select_layer.groups(toml) == [
        ("foundation", ["typing-extensions", "not-in-the-lock"]),
        ("templates", ["markupsafe", "jinja2"]),
        ("layer-3", ["zope-interface"]),
    ]


# -- splitting ---------------------------------------------------------------------------------------------
def test_split_puts_unlisted_packages_in_rest() -> None:
    assert select_layer.split(LOCK, LAYERS) == {
        "1": ["typing-extensions"],
        "2": ["markupsafe", "jinja2"],
        "3": [],
        "rest": ["annotated-doc", "fastapi"],
    }


def test_split_without_groups_puts_everything_in_rest() -> None:
    assert select_layer.split(LOCK, "") == {"1": [], "2": [], "3": [], "rest": sorted(ENTRIES)}


@pytest.mark.parametrize(
    ("slot", "text"),
    [
        pytest.param("1", ENTRIES["typing-extensions"] + "\n", id="slot-1"),
        pytest.param("2", ENTRIES["markupsafe"] + "\n" + ENTRIES["jinja2"] + "\n", id="slot-2-in-layers-order"),
        pytest.param("3", "", id="empty-slot"),
        pytest.param("rest", ENTRIES["annotated-doc"] + "\n" + ENTRIES["fastapi"] + "\n", id="rest-sorted"),
    ],
)
def test_select(slot: str, text: str) -> None:
    assert select_layer.select(LOCK, LAYERS, slot) == text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param(layers_toml(["fastapi"], ["jinja2", "fastapi"]), "package fastapi is listed in two layers of layers.toml", id="two-groups"),
        pytest.param(layers_toml(["Jinja2"], ["jinja2"]), "package jinja2 is listed in two layers of layers.toml", id="two-spellings"),
        pytest.param(layers_toml(["fastapi", "fastapi"]), "package fastapi is listed in two layers of layers.toml", id="same-group"),
        pytest.param(layers_toml(["a"], ["b"], ["c"], ["d"]), "layers.toml defines 4 groups; the Dockerfile has slots for 3", id="four-groups"),
    ],
)
def test_invalid_layers_toml(toml: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        select_layer.split(LOCK, toml)
    assert str(caught.value) == message


@pytest.mark.parametrize("slot", ["0", "4", "", "REST", "layer-1"])
def test_unknown_slot(slot: str) -> None:
    with pytest.raises(ValueError) as caught:
        select_layer.select(LOCK, LAYERS, slot)
    assert str(caught.value) == f"unknown slot {slot!r}: use one of 1, 2, 3, rest"


# -- the union of the slots is the whole lock ------------------------------------------------------------------
words = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=5)
names = st.builds(lambda first, rest: "-".join([first, *rest]), st.text("abcxyz", min_size=1, max_size=3), st.lists(words, max_size=2))
hashes = st.lists(st.text("0123456789abcdef", min_size=8, max_size=8), min_size=1, max_size=3)


def spell(name: str, variant: int) -> str:
    """The same package written as a lock generator might: Name, name_with_underscores, name.with.dots."""
    return [name, name.replace("-", "_"), name.replace("-", ".").title()][variant]


@st.composite
def locks_and_layers(draw):
    packages = draw(st.lists(names, unique=True, max_size=12))
    lines = ["# header"]
    for name in packages:
        entry_hashes = draw(hashes)
        lines.append(f"{spell(name, draw(st.integers(0, 2)))}==1.0 \\")
        lines += [f"    --hash=sha256:{h} \\" for h in entry_hashes[:-1]] + [f"    --hash=sha256:{entry_hashes[-1]}"]
        if draw(st.booleans()):
            lines.append("    # via something")
    candidates = packages + draw(st.lists(names, max_size=3))  # some listed names are not in the lock
    listed = draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
    group_count = draw(st.integers(0, 3))
    groups = [listed[i::group_count] for i in range(group_count)] if group_count else []
    return "\n".join(lines) + "\n", layers_toml(*groups), packages


@given(locks_and_layers())
def test_every_locked_entry_lands_in_exactly_one_slot(case) -> None:
    lock, toml, packages = case
    entries = select_layer.lock_entries(lock)
    assert sorted(entries) == sorted(packages)
    slots = select_layer.split(lock, toml)
    placed = [name for slot in select_layer.SLOTS for name in slots[slot]]
    assert sorted(placed) == sorted(entries)
    selected = "".join(select_layer.select(lock, toml, slot) for slot in select_layer.SLOTS)
    assert select_layer.lock_entries(selected) == entries


def test_the_repository_lock_is_fully_split_by_its_layers() -> None:
    lock = (REPO_ROOT / "requirements.lock").read_text()
    toml = (REPO_ROOT / "deps" / "layers.toml").read_text()
    entries = select_layer.lock_entries(lock)
    slots = select_layer.split(lock, toml)
    placed = [name for slot in select_layer.SLOTS for name in slots[slot]]
    assert len(placed) == len(set(placed)), "a package is in two slots"
    assert sorted(placed) == sorted(entries)
    assert all(line.lstrip().startswith("--hash=sha256:") for entry in entries.values() for line in entry.splitlines()[1:])
