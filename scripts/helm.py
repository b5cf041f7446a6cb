#!/usr/bin/env python3
"""Helm for the Kubernetes end-to-end test, without a helm binary.

Drives Helm 4 through the helm-python-sdk package (import name ``helm_python``; a C ABI
over Helm's Go SDK). Run it with the venv scripts/e2e-venv makes:

    V=/var/tmp/murphy-e2e-venv/bin/python
    $V scripts/helm.py lint charts/murphy
    $V scripts/helm.py template charts/murphy --set image.tag=e2e [--include-crds]
    $V scripts/helm.py install murphy charts/murphy --namespace murphy-system \
        --set image.repository=localhost/murphy-operator --wait-seconds 180
    $V scripts/helm.py upgrade murphy charts/murphy --namespace murphy-system --set ...
    $V scripts/helm.py uninstall murphy --namespace murphy-system

Cluster commands use the kubeconfig in $KUBECONFIG (then ~/.kube/config), as helm does.
--set takes helm's --set syntax (a=1,b.c=x,list={a,b}); repeat it, later ones win.
-f/--values FILE takes a values YAML file. Exit status: 0 on success, 1 when Helm
reports a failure (lint errors included), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

# This script's directory must not shadow stdlib modules for helm_python (its package
# has a module named "logging"); nothing to do as long as it is not run from inside the
# helm_python package directory.
try:
    import helm_python as helm
except ImportError as exc:  # not the venv's python
    sys.exit(
        f"helm.py: cannot import helm_python ({exc}); run with the python of the venv "
        "scripts/e2e-venv makes (/var/tmp/murphy-e2e-venv/bin/python)"
    )


def die(message: str, code: int = 1) -> None:
    print(f"helm.py: {message}", file=sys.stderr)
    sys.exit(code)


def merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``new`` into ``into`` (new wins; maps merge, anything else replaces)."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def values_of(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values or []:
        try:
            with open(path, encoding="utf-8") as f:
                merge(values, helm.values_from_yaml(f.read()))
        except OSError as exc:
            die(f"values file {path}: {exc}")
    for flag, parse, exprs in (
        ("--set", helm.parse_set_string, args.set),
        ("--set-string", helm.parse_set_string_values, args.set_string),
    ):
        for expr in exprs or []:
            parsed = parse(expr)
            # Helm's parser returns {} for some malformed input (e.g. "a[=1") instead of
            # failing; a --set that sets nothing is always a mistake.
            if not parsed:
                die(f"{flag} {expr!r} sets no value (malformed?)", 2)
            merge(values, parsed)
    return values


def kube_config(namespace: str) -> helm.Config:
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig and not os.path.isfile(kubeconfig):
        die(f"KUBECONFIG={kubeconfig} is not a file")
    # kubeconfig_path=None: KUBECONFIG, then ~/.kube/config, then in-cluster (the SDK's
    # own resolution). A colon-separated KUBECONFIG list is left to that resolution.
    single = kubeconfig if kubeconfig and os.pathsep not in kubeconfig else None
    return helm.Config(kubeconfig_path=single, namespace=namespace)


def cmd_lint(args: argparse.Namespace) -> int:
    report = helm.lint(
        args.chart,
        values_of(args) or None,
        strict=args.strict,
        namespace=args.namespace,
    )
    names = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
    worst = 0
    for msg in report.get("messages", []):
        sev = int(msg.get("severity", 0))
        worst = max(worst, sev)
        print(f"[{names.get(sev, sev)}] {msg.get('path', '')}: {msg.get('error', '')}")
    for err in report.get("errors") or []:
        print(f"[ERROR] {err}")
    failed = bool(report.get("errors")) or worst >= 3 or (args.strict and worst >= 2)
    print(
        f"{report.get('total_charts_linted', 0)} chart(s) linted, "
        f"{'FAILED' if failed else 'no failures'}"
    )
    return 1 if failed else 0


def cmd_template(args: argparse.Namespace) -> int:
    with helm.Chart.load(args.chart) as chart:
        if args.include_crds:
            for crd in chart.crds:
                print(f"---\n# Source: {crd.get('filename') or crd.get('name')}")
                print(crd["data"].rstrip("\n"))
        rendered = chart.render(
            values_of(args),
            name=args.release,
            namespace=args.namespace,
            is_install=True,
        )
    for path in sorted(rendered):
        body = rendered[path]
        # Like `helm template`: NOTES.txt is not a manifest; empty renders are skipped.
        if path.endswith("NOTES.txt") or not body.strip():
            continue
        print(f"---\n# Source: {path}")
        print(body.strip("\n"))
    return 0


def summary(release: dict[str, Any]) -> str:
    """One line from a release summary (keys as helm-c returns them)."""
    chart = None
    if release.get("chart_name"):
        chart = f"{release['chart_name']}-{release.get('chart_version', '')}"
    fields = {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": release.get("revision"),
        "status": release.get("status"),
        "chart": chart,
        "app_version": release.get("app_version"),
    }
    return ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))


def cmd_install(args: argparse.Namespace) -> int:
    values = values_of(args)
    start = time.monotonic()
    with kube_config(args.namespace) as cfg, helm.Chart.load(args.chart) as chart:
        cfg.check_reachable()
        release = cfg.install(
            chart,
            args.release,
            values,
            namespace=args.namespace,
            wait="watcher" if args.wait_seconds else None,
            timeout=args.wait_seconds or None,
            create_namespace=args.create_namespace,
        )
    took = time.monotonic() - start
    waited = f", waited for readiness (<= {args.wait_seconds}s)" if args.wait_seconds else ""
    print(f"installed: {summary(release)} in {took:.1f}s{waited}")
    if args.show_manifest:
        print(release.get("manifest", ""))
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    values = values_of(args)
    start = time.monotonic()
    with kube_config(args.namespace) as cfg, helm.Chart.load(args.chart) as chart:
        cfg.check_reachable()
        release = cfg.upgrade(
            chart,
            args.release,
            values,
            namespace=args.namespace,
            wait="watcher" if args.wait_seconds else None,
            timeout=args.wait_seconds or None,
        )
    took = time.monotonic() - start
    waited = f", waited for readiness (<= {args.wait_seconds}s)" if args.wait_seconds else ""
    print(f"upgraded: {summary(release)} in {took:.1f}s{waited}")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    start = time.monotonic()
    with kube_config(args.namespace) as cfg:
        result = cfg.uninstall(
            args.release,
            ignore_not_found=args.ignore_not_found,
            wait="watcher" if args.wait_seconds else None,
            timeout=args.wait_seconds or None,
        )
    took = time.monotonic() - start
    rel = result.get("release") or {}
    what = summary(rel) if rel else args.release
    print(f"uninstalled: {what} in {took:.1f}s {result.get('info') or ''}".rstrip())
    return 0


def add_values_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="K=V", help="helm --set expression")
    p.add_argument("--set-string", action="append", metavar="K=V", help="values stay strings")
    p.add_argument("-f", "--values", action="append", metavar="FILE", help="values YAML")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helm.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    lint = sub.add_parser("lint", help="lint a chart (offline)")
    lint.add_argument("chart")
    lint.add_argument("--strict", action="store_true", help="warnings fail too")
    lint.add_argument("--namespace", "-n", default=None)
    add_values_opts(lint)
    lint.set_defaults(func=cmd_lint)

    tpl = sub.add_parser("template", help="render a chart to stdout (offline)")
    tpl.add_argument("chart")
    tpl.add_argument("--release", default="murphy", help="release name (default murphy)")
    tpl.add_argument("--namespace", "-n", default="default")
    tpl.add_argument("--include-crds", action="store_true", help="print crds/ first")
    add_values_opts(tpl)
    tpl.set_defaults(func=cmd_template)

    ins = sub.add_parser("install", help="install a release (CRDs from crds/ first)")
    ins.add_argument("release")
    ins.add_argument("chart")
    ins.add_argument("--namespace", "-n", required=True)
    ins.add_argument("--create-namespace", action="store_true")
    ins.add_argument(
        "--wait-seconds",
        type=int,
        default=0,
        metavar="N",
        help="wait up to N s for the resources to be ready (0: do not wait)",
    )
    ins.add_argument("--show-manifest", action="store_true")
    add_values_opts(ins)
    ins.set_defaults(func=cmd_install)

    up = sub.add_parser("upgrade", help="upgrade a release with new values (not --reuse-values)")
    up.add_argument("release")
    up.add_argument("chart")
    up.add_argument("--namespace", "-n", required=True)
    up.add_argument("--wait-seconds", type=int, default=0, metavar="N")
    add_values_opts(up)
    up.set_defaults(func=cmd_upgrade)

    un = sub.add_parser("uninstall", help="remove a release")
    un.add_argument("release")
    un.add_argument("--namespace", "-n", required=True)
    un.add_argument("--ignore-not-found", action="store_true")
    un.add_argument("--wait-seconds", type=int, default=0, metavar="N")
    un.set_defaults(func=cmd_uninstall)
    return p


def main() -> int:
    args = parser().parse_args()
    try:
        return int(args.func(args))
    except helm.HelmError as exc:
        kind = type(exc).__name__
        code = getattr(exc, "code", None)
        die(f"{args.cmd} failed: {kind}{f' (code {int(code)})' if code is not None else ''}: {exc}")
    except json.JSONDecodeError as exc:
        die(f"{args.cmd}: unexpected reply from the Helm library: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
