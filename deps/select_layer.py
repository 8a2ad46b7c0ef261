"""Select one dependency layer's entries from a hashed requirements lock.

    python3 select_layer.py requirements.lock layers.toml SLOT

SLOT is 1, 2 or 3 (the groups of layers.toml, bottom to top) or "rest" (every
locked package no group lists). Prints the lock entries (with their hashes) for
`pip install --require-hashes --no-deps -r -`. Runs at build time inside the
image (stdlib only), and is imported by the delivery tests and tasks.
"""
from __future__ import annotations

import re
import sys
import tomllib

SLOTS = ("1", "2", "3", "rest")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503 name normalization: Jinja2 -> jinja2, typing_extensions -> typing-extensions."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(lock_text: str) -> dict[str, str]:
    """{normalized name: the entry's text (requirement line plus its --hash continuation lines)}."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock_text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if current is not None:
                current.append(line)
            continue
        match = _NAME.match(line)
        if not match:
            raise ValueError(f"unreadable lock line: {line!r}")
        current = entries.setdefault(normalize(match.group(1)), [])
        current.append(line)
    return {name: "\n".join(lines) for name, lines in entries.items()}


def groups(layers_toml: str) -> list[tuple[str, list[str]]]:
    """[(layer name, [normalized package names])], bottom to top; at most three groups."""
    layers = tomllib.loads(layers_toml).get("layer", [])
    if len(layers) > len(SLOTS) - 1:
        raise ValueError(f"layers.toml defines {len(layers)} groups; the Dockerfile has slots for {len(SLOTS) - 1}")
    result, seen = [], set()
    for layer in layers:
        names = [normalize(p) for p in layer.get("packages", [])]
        for name in names:
            if name in seen:
                raise ValueError(f"package {name} is listed in two layers of layers.toml")
            seen.add(name)
        result.append((str(layer.get("name", f"layer-{len(result) + 1}")), names))
    return result


def split(lock_text: str, layers_toml: str) -> dict[str, list[str]]:
    """{slot: [normalized names in the lock that go into that slot]}, slots in SLOTS order."""
    entries = lock_entries(lock_text)
    layout = groups(layers_toml)
    listed: set[str] = set()
    result: dict[str, list[str]] = {}
    for slot, (_, names) in zip(SLOTS, layout, strict=False):
        result[slot] = [n for n in names if n in entries]
        listed.update(names)
    for slot in SLOTS[len(layout):-1]:
        result[slot] = []
    result["rest"] = sorted(n for n in entries if n not in listed)
    return result


def select(lock_text: str, layers_toml: str, slot: str) -> str:
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}: use one of {', '.join(SLOTS)}")
    entries = lock_entries(lock_text)
    return "".join(entries[name] + "\n" for name in split(lock_text, layers_toml)[slot])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with open(sys.argv[1]) as lock, open(sys.argv[2]) as spec:
        sys.stdout.write(select(lock.read(), spec.read(), sys.argv[3]))
