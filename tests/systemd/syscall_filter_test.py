#!/usr/bin/env python3
"""The system calls a unit's SystemCallFilter= lets through, as systemd
resolves its lines (systemd.exec(5)): the first line decides whether the
list allows or denies, and each later line adds to it or, with "~", takes
from it. Every call korttid makes for a documented feature must be among
them: the filter answers any other with EPERM (SystemCallErrorNumber=), so
a feature it stops fails only on an installed system, under systemd.

    syscall_filter_test.py UNIT_FILE
"""

import subprocess
import sys

# What korttid calls, and why; a call missing here is missing from the
# service as installed.
NEEDED = {
    "chown": "a tunnel's socket given [ipc] socket_group (tls/tunnels.cpp)",
    "fchownat": "the same through glibc's other path",
    "chmod": "the sockets' [ipc] socket_mode",
    "fchmod": "the sockets' [ipc] socket_mode",
    "fdatasync": "the audit line on stable storage before the answer",
    "fsync": "the audit trail's directory entry and its head",
    "flock": "one korttid per audit trail",
    "mlock": "the PIN memory (OpenSSL's secure heap)",
    "madvise": "the PIN memory kept out of core dumps",
    "prctl": "no core dump (PR_SET_DUMPABLE)",
    "socket": "clients, pcscd, OCSP and CRL hosts, TLS upstreams",
    "connect": "pcscd, OCSP and CRL hosts, TLS upstreams",
    "accept4": "clients and tunnels",
    "clone3": "threads (token workers, tunnels, name lookups)",
}
# Denied by the unit: a parse that let everything through would pass the
# check above.
DENIED = ["reboot", "mount", "init_module", "setuid", "settimeofday"]


def expand(names, seen=None):
    """The calls of `names`, groups (@name) opened recursively."""
    seen = set() if seen is None else seen
    calls = set()
    groups = [n for n in names if n.startswith("@")]
    calls.update(n for n in names if not n.startswith("@"))
    for group in groups:
        if group in seen:
            continue
        seen.add(group)
        out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", group], check=True,
                             capture_output=True, text=True).stdout
        members = []
        for line in out.splitlines()[1:]:
            line = line.strip()
            if not line:
                break  # the group's list ends at its first blank line
            if line.startswith("#"):
                continue
            members.append(line)
        calls |= expand(members, seen)
    return calls


def allowed(unit):
    lines = []
    with open(unit, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("SystemCallFilter="):
                lines.append(line.split("=", 1)[1].split())
    if not lines:
        sys.exit(f"{unit}: no SystemCallFilter=")
    if lines[0][0].startswith("~"):
        sys.exit(f"{unit}: a deny-list filter; this test reads allow-lists")
    calls = set()
    for words in lines:
        deny = words[0].startswith("~")
        names = [words[0].lstrip("~")] + words[1:]
        if deny:
            calls -= expand(names)
        else:
            calls |= expand(names)
    return calls


def main():
    unit = sys.argv[1]
    calls = allowed(unit)
    problems = [f"{name} is filtered out: {why}" for name, why in NEEDED.items() if name not in calls]
    problems += [f"{name} is let through (the filter was not read right)" for name in DENIED if name in calls]
    for p in problems:
        print(f"{unit}: {p}")
    print(f"{unit}: {len(calls)} calls allowed, {len(NEEDED)} needed checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
