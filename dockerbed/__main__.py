"""`python3 -m dockerbed`: what scripts/testbed starts and stops through this package.

  engine up NAME --root DIR [--store S] [--bridge B --cidr C] [--system] [--netns N --hostname H]
  engine down --root DIR [--system]
  registry up NAME --root DIR --address HOST:PORT [--tls-certificate F --tls-key F --cafile F]
  registry down --root DIR
  netns up --bridge B --cidr C NAME:VETH:ADDRESS...     a bridge, forwarding on it, namespaces on it
  netns down --bridge B NAME:VETH:ADDRESS...
  bridges prune-orphans --socket S...                   remove br-* bridges no engine of these sockets owns
  ca --directory DIR --ip IP                            ca.crt/ca.key and IP's registry.crt/registry.key
  packages specs SUITE [--apt-option O]...              the verified versions of SUITE's packages to install
                                                        (name=version, or name with a note when Debian dropped it)
  packages report [--image SUITE=IMAGE]...              the installed versions, and one line when they differ
  packages record [--image SUITE=IMAGE]...              write the installed versions into verified-packages.txt

Errors are one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockerbed import BedError, bridges, certificates, engines, packages, registries


def log(message: str) -> None:
    print(f"\033[1m[testbed]\033[0m {message}", file=sys.stderr, flush=True)


def engine_of(args: argparse.Namespace) -> engines.Engine:
    return engines.Engine(Path(args.root), store=args.store, bridge=args.bridge, system=args.system,
                          netns=args.netns, hostname=args.hostname)  # fmt: skip


def engine_up(args: argparse.Namespace) -> None:
    engine = engine_of(args)
    if engines.answers(engine):
        log(f"{args.name} engine already running")
        return
    if args.bridge:
        bridges.ensure(args.bridge, args.cidr)
    where = f", bridge {args.bridge}" if args.bridge else (f", network namespace {args.netns}" if args.netns else "")
    log(f"starting the {args.name} engine ({engine.host}{where}, {args.store} image store)")
    engines.start(engine)


def engine_down(args: argparse.Namespace) -> None:
    engines.stop(engine_of(args))


def registry_of(args: argparse.Namespace) -> registries.Registry:
    cert = getattr(args, "tls_certificate", None)
    key = getattr(args, "tls_key", None)
    return registries.Registry(Path(args.root), getattr(args, "address", ""), Path(cert) if cert else None,
                               Path(key) if key else None)  # fmt: skip


def registry_up(args: argparse.Namespace) -> None:
    registry = registry_of(args)
    if registries.answers(registry, args.cafile):
        log(f"{args.name} already running on {registry.url}")
        return
    log(f"starting the {args.name} on {registry.url} (access log: {registry.log})")
    registries.start(registry, args.cafile)


def registry_down(args: argparse.Namespace) -> None:
    registries.stop(registry_of(args))


def namespaces(args: argparse.Namespace) -> list[bridges.Namespace]:
    gateway = args.cidr.split("/", 1)[0] if args.cidr else ""
    found = []
    for spec in args.namespaces:
        name, veth, address = spec.split(":")
        found.append(bridges.Namespace(name, veth, address, gateway))
    return found


def netns_up(args: argparse.Namespace) -> None:
    bridges.ensure(args.bridge, args.cidr)
    bridges.allow_forwarding(args.bridge)
    for namespace in namespaces(args):
        bridges.ensure_namespace(namespace, args.bridge)


def netns_down(args: argparse.Namespace) -> None:
    for namespace in namespaces(args):
        bridges.delete_namespace(namespace)
    bridges.disallow_forwarding(args.bridge)
    bridges.delete(args.bridge)


def bridges_prune_orphans(args: argparse.Namespace) -> None:
    for bridge in bridges.prune_orphans(args.sockets):
        log(f"removed orphan bridge {bridge} (left by a stopped engine)")


def ca(args: argparse.Namespace) -> None:
    directory = Path(args.directory)
    if (directory / "registry.crt").exists():
        return
    certificates.create_ca(directory / "ca.crt", directory / "ca.key", "production-control test bed CA", days=3650)
    certificates.server_certificate(directory / "ca.crt", directory / "ca.key", directory / "registry.crt",
                                    directory / "registry.key", args.ip, days=3650)  # fmt: skip


def packages_specs(args: argparse.Namespace) -> None:
    pins = packages.verified(args.suite)
    specs, notes = packages.choose(pins, packages.available([pin.name for pin in pins], args.apt_options))
    for note in notes:
        log(note)
    print(" ".join(specs))


def installed_by_suite(args: argparse.Namespace) -> dict[str, str | None]:
    """The installed version of every verified package: on this machine, or in the image given for its suite."""
    images = dict(spec.split("=", 1) for spec in args.images)
    found: dict[str, str | None] = {}
    by_suite: dict[str, list[str]] = {}
    for pin in packages.verified():
        by_suite.setdefault(pin.suite, []).append(pin.name)
    for suite, names in by_suite.items():
        if suite in images:
            found.update(packages.installed(names, ["docker", "run", "--rm", "--network", "none", images[suite]]))
        elif not suite.endswith("-image"):
            found.update(packages.installed(names))
    return found


def packages_report(args: argparse.Namespace) -> None:
    found = installed_by_suite(args)
    versions, differ = packages.report([pin for pin in packages.verified() if pin.name in found], found)
    log(versions)
    if differ:
        log(differ)


def packages_record(args: argparse.Namespace) -> None:
    for line in packages.record(installed_by_suite(args)) or ["nothing changed"]:
        log(f"verified-packages.txt: {line}")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python3 -m dockerbed", description="The Docker test bed's engines, registries and bridges.")
    subjects = top.add_subparsers(dest="subject", required=True)

    engine = subjects.add_parser("engine").add_subparsers(dest="action", required=True)
    for action, run in (("up", engine_up), ("down", engine_down)):
        sub = engine.add_parser(action)
        if action == "up":
            sub.add_argument("name")
        sub.add_argument("--root", required=True)
        sub.add_argument("--store", choices=engines.STORES, default="overlay2")
        sub.add_argument("--bridge")
        sub.add_argument("--cidr")
        sub.add_argument("--system", action="store_true")
        sub.add_argument("--netns")
        sub.add_argument("--hostname")
        sub.set_defaults(run=run)

    registry = subjects.add_parser("registry").add_subparsers(dest="action", required=True)
    up = registry.add_parser("up")
    up.add_argument("name")
    up.add_argument("--root", required=True)
    up.add_argument("--address", required=True)
    up.add_argument("--tls-certificate")
    up.add_argument("--tls-key")
    up.add_argument("--cafile", type=Path)
    up.set_defaults(run=registry_up)
    down = registry.add_parser("down")
    down.add_argument("--root", required=True)
    down.set_defaults(run=registry_down)

    netns = subjects.add_parser("netns").add_subparsers(dest="action", required=True)
    for action, run in (("up", netns_up), ("down", netns_down)):
        sub = netns.add_parser(action)
        sub.add_argument("--bridge", required=True)
        sub.add_argument("--cidr", required=action == "up")
        sub.add_argument("namespaces", nargs="*", metavar="NAME:VETH:ADDRESS")
        sub.set_defaults(run=run)

    prune = subjects.add_parser("bridges").add_subparsers(dest="action", required=True).add_parser("prune-orphans")
    prune.add_argument("--socket", dest="sockets", action="append", required=True,
                       help="a running engine's socket path; give each engine of the test bed")  # fmt: skip
    prune.set_defaults(run=bridges_prune_orphans)

    pkgs = subjects.add_parser("packages").add_subparsers(dest="action", required=True)
    specs = pkgs.add_parser("specs")
    specs.add_argument("suite")
    specs.add_argument("--apt-option", dest="apt_options", action="append", default=[])
    specs.set_defaults(run=packages_specs)
    for action, run in (("report", packages_report), ("record", packages_record)):
        sub = pkgs.add_parser(action)
        sub.add_argument("--image", dest="images", action="append", default=[], metavar="SUITE=IMAGE")
        sub.set_defaults(run=run)

    authority = subjects.add_parser("ca")
    authority.add_argument("--directory", required=True)
    authority.add_argument("--ip", required=True)
    authority.set_defaults(run=ca)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "bridge", None) and args.subject == "engine" and args.action == "up" and not args.cidr:
        parser().error("--bridge needs --cidr")
    try:
        args.run(args)
    except BedError as error:
        print(f"[testbed] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
