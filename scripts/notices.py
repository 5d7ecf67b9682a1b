#!/usr/bin/env python3
"""Third-party notices for hakit's binaries, from Cargo.lock.

The static binaries embed code under MIT, BSD-3-Clause, ISC, Unicode-3.0 and other
licences whose terms require their notices in binary redistributions. This lists every
crate linked into the shipped binaries (normal dependencies of the `hakit` package for
TARGET, proc-macros excluded: they run at build time and ship nothing), with its licence
expression and the licence and notice files the crate itself carries.

Usage: notices.py TARGET OUT      (exit 1 when a crate's licence cannot be established)
"""
import json
import os
import subprocess
import sys

LICENCE_FILES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "COPYRIGHT", "UNLICENSE")


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    target, out = sys.argv[1], sys.argv[2]
    tree = run("cargo", "tree", "--locked", "-e", "normal,no-proc-macro", "--target", target,
               "-p", "hakit", "--prefix", "none", "-f", "{p}")
    linked = set()
    for line in tree.splitlines():
        parts = line.replace(" (*)", "").split()
        if len(parts) >= 2:
            linked.add((parts[0], parts[1].lstrip("v")))
    meta = json.loads(run("cargo", "metadata", "--locked", "--format-version", "1",
                          "--filter-platform", target))
    crates = sorted(
        (p for p in meta["packages"]
         if (p["name"], p["version"]) in linked and p.get("source")),
        key=lambda p: (p["name"], p["version"]))
    missing = [f"{n} {v}" for n, v in linked
               if not any(p["name"] == n and p["version"] == v for p in meta["packages"])]
    if missing:
        sys.stderr.write(f"notices: not in cargo metadata: {missing}\n")
        return 1
    lines = [
        "Third-party software in hakit's binaries",
        "=========================================",
        "",
        "hakit itself is Apache-2.0. Its static binaries (garp-burst, nat-notify, ha-check,",
        "fip-claim) also contain the following crates, each under the licence named (where a",
        "choice is offered, any of the options applies). Each crate's own licence and notice",
        "files follow the list. Generated from Cargo.lock by scripts/notices.py.",
        "",
    ]
    ids = sorted({w.strip("()") for p in crates for w in (p.get("license") or "").replace("/", " ").split()
                  if w.strip("()") not in ("OR", "AND", "WITH", "")})
    lines += [f"Licences: {', '.join(ids)}", ""]
    width = max(len(f"{p['name']} {p['version']}") for p in crates)
    for p in crates:
        lines.append(f"  {p['name'] + ' ' + p['version']:<{width}}  {p.get('license') or '(see files)'}")
    lines.append("")
    bad = []
    for p in crates:
        d = os.path.dirname(p["manifest_path"])
        files = sorted(f for f in os.listdir(d)
                       if f.upper().startswith(LICENCE_FILES) and os.path.isfile(os.path.join(d, f)))
        if not p.get("license") and not files:
            bad.append(p["name"])
        lines += ["", "-" * 78, f"{p['name']} {p['version']}: {p.get('license') or ''}",
                  f"Source: {p.get('repository') or 'crates.io'}", "-" * 78]
        if not files:
            lines.append(f"(the crate carries no licence file; {p.get('license')} as published at "
                         "https://spdx.org/licenses/)")
        for f in files:
            with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
                lines += ["", f"--- {f} ---", fh.read().rstrip()]
    if bad:
        sys.stderr.write(f"notices: no licence for {bad}\n")
        return 1
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    licences = sorted({p.get("license") for p in crates})
    print(f"notices: {len(crates)} crates, licences: {'; '.join(licences)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
