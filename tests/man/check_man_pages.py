#!/usr/bin/env python3
"""The man pages against the programs they describe.

    check_man_pages.py SOURCE_DIR BUILD_DIR

- kortti(1) and korttid(8): every command and option that the programs' own
  --help lists (walked recursively) is in the page, each option in its
  command's paragraph or in a section the paragraph points to;
- korttid.toml(5): every key of the config schema (korttid-config-reference
  --names) is in the rendered page under its table's heading;
- groff renders each page without a warning (as lintian checks).
"""

import re
import subprocess
import sys
from pathlib import Path

source, build = Path(sys.argv[1]), Path(sys.argv[2])
problems = []


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def option_names(line):
    # "  -c,--config PATH   configuration file": the names before the first blank.
    head = line.strip().split(" ")[0]
    return [o for o in head.split(",") if o.startswith("-") and o not in ("-h", "--help")]


def walk_cli(program, path=()):
    text = run(program, *path, "--help")
    section, options, subcommands = None, [], []
    for line in text.splitlines():
        if re.match(r"^(Options|Subcommands|Positionals):$", line):
            section = line[:-1]
        elif not line.strip():
            section = None if section == "Subcommands" else section
        elif re.match(r"^  \S", line) and section == "Options":
            options += option_names(line)
        elif re.match(r"^  \S", line) and section == "Subcommands":
            subcommands.append(line.split()[0])
        elif not line.startswith(" "):
            section = None
    yield path, options, bool(subcommands)
    for sub in subcommands:
        yield from walk_cli(program, path + (sub,))


def paragraphs(scd):
    """The page's paragraphs, as (first line, text up to the next blank line)."""
    out, current = [], []
    for line in scd.splitlines() + [""]:
        if line.strip():
            current.append(line)
        elif current:
            out.append(current)
            current = []
    return [(p[0], "\n".join(p)) for p in out]


def section(scd, title):
    match = re.search(r"^# " + re.escape(title) + r"\n(.*?)(?=^# |\Z)", scd, re.S | re.M)
    return match.group(1) if match else ""


def check_cli(page, program, pointers):
    scd = (source / page).read_text()
    paras = paragraphs(scd)
    for path, options, has_subcommands in walk_cli(program):
        if not path:
            where = section(scd, "GLOBAL OPTIONS") or section(scd, "OPTIONS")
            for option in options:
                if f"*{option}*" not in where:
                    problems.append(f"{page}: option {option} of {program.name} is not in OPTIONS")
            continue
        if has_subcommands:
            continue
        name = " ".join(path)
        found = [text for first, text in paras if first.startswith(f"*{name}*")]
        if not found:
            problems.append(f"{page}: command '{name}' has no paragraph (a line starting *{name}*)")
            continue
        text = found[0]
        for option in options:
            if f"*{option}*" in text:
                continue
            if any(marker in text and f"*{option}*" in section(scd, title) for marker, title in pointers):
                continue
            problems.append(f"{page}: option {option} of '{name}' is not in its paragraph")


check_cli("client/kortti.1.scd", build / "client/kortti", [("PIN OPTIONS", "PIN OPTIONS")])
check_cli("daemon/korttid.8.scd", build / "daemon/korttid", [])

# korttid.toml(5): every key under its table's heading, in the rendered page.
rendered = run("groff", "-man", "-Tutf8", "-P", "-cbou", str(build / "man/korttid.toml.5"))
table, seen = None, {}
for line in rendered.splitlines():
    heading = re.match(r"^ {0,3}(\[\[?[\w.]+\]\]?)\s*$", line)
    if heading:
        table = heading.group(1).strip("[]")
        continue
    key = re.match(r"^\s+([a-z][a-z0-9_]*)( = | \(|$)", line)
    if key and table:
        seen.setdefault(table, set()).add(key.group(1))
names = run(str(build / "daemon/korttid-config-reference"), "--names").split()
if not names:
    problems.append("korttid-config-reference --names listed no key")
for name in names:
    table_name, _, key = name.rpartition(".")
    if key not in seen.get(table_name, set()):
        problems.append(f"korttid.toml.5: key {name} is not under [{table_name}]")

# groff's own warnings (-ww), as lintian's groff-message check sees them.
for page in ("kortti.1", "korttid.8", "korttid.toml.5"):
    result = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", str(build / "man" / page)],
                            capture_output=True, text=True)
    if result.returncode or result.stderr.strip():
        problems.append(f"{page}: groff warns: {result.stderr.strip()}")

for problem in problems:
    print(problem)
print(f"{len(names)} config keys, {len(problems)} problems")
sys.exit(1 if problems else 0)
