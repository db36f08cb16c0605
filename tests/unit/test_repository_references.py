"""Everything the repository refers to is in the repository, or a real path of the system it runs on.

A clone must stand alone: its docs and comments may not send a reader to a design folder beside
the repository (a parent-relative path to it, or its specification by name: the contract is
docs/api.md), nor to a folder of the machine it was written on (a checkout folder of a build
machine, someone's home, root's home, a scratch folder under the temporary directory, a macOS
or Windows user folder).

The forbidden forms are spelled below only in pieces, so this file does not itself carry them.

Scanned: every file git tracks, plus the untracked files git does not ignore (so a new file is
checked before its first commit); binary files (a NUL byte, or not UTF-8) and this file are left
out.

An absolute path under a system folder (`/home`, `/root`, `/tmp`, `/usr`, `/var`, `/etc`, `/opt`,
`/run`, `/proc`, `/dev`, `/mnt`, `/srv`, a build machine's checkout folder, …) is allowed only when it is on ALLOWED below: a
path the code or its scripts really use on every machine or in the image, each with the reason.
Such a folder named alone (`a lock file in /tmp`) is allowed, but for the folders where build
machines keep their checkouts (BUILD_MACHINE_FOLDERS).
Paths inside the image that are not under such folders (`/src`, `/wheels`) are the Dockerfile's
own and are not checked. A URL's path (`http://host/var/x`) is not a file path and is not matched.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.servers import REPO_ROOT

THIS_FILE = Path(__file__).resolve().relative_to(REPO_ROOT).as_posix()

# The names the scan looks for, in pieces (see the module's docstring).
UP = ".."
STEERING = "sha" + "red"
SPEC = "SP" + "EC"
CHECKOUTS = "wo" + "rk"

# References to something outside the repository.
OUTSIDE = {
    "the steering folder beside the repository": re.compile(
        re.escape(UP) + "/" + STEERING + r"\b|(?<![\w.-])" + STEERING + "/" + SPEC
    ),
    "the design document (docs/api.md is the contract)": re.compile(r"\b" + SPEC + r"(\.md)?\b"),
    "a Windows user folder": re.compile(r"\b[A-Za-z]:\\\\?Users\\"),
}

SYSTEM_FOLDERS = (
    "work|workspace|home|root|Users|tmp|var|usr|etc|opt|run|proc|dev|mnt|srv|build|private|nix|snap|data"
)
# An absolute path: not part of a URL, a relative path or a word (`a/usr/x`, `http://h/tmp`, `~/tmp`).
ABSOLUTE_PATH = re.compile(rf"(?<![\w.~$}}/:-])/(?:{SYSTEM_FOLDERS})(?:/[^\s\"'`()<>,;|]*)?(?![\w-])")

# (prefix, where it may appear (None: anywhere), why it is not a build machine's path)
ALLOWED: list[tuple[str, str | None, str]] = [
    ("/usr/bin/env", None, "the shebang of every script"),
    ("/dev/null", None, "the null device"),
    ("/dev/tcp/", "scripts/", "bash's TCP redirection (the port checks of ensure-services.sh)"),
    ("/proc/", None, "Linux's process table (CPU time of a pid, /proc/cpuinfo)"),
    ("/usr/bin/chromium", None, "Debian's chromium, which scripts/ensure-browser.sh installs"),
    ("/usr/share/fonts/", "scripts/ensure-browser.sh", "Debian's Noto CJK fonts, installed by the script"),
    ("/usr/sbin/mariadbd", "scripts/ensure-services.sh", "Debian's MariaDB server binary"),
    ("/run/mysqld", "scripts/ensure-services.sh", "Debian's MariaDB socket folder"),
    ("/usr/local/sbin", "tests/support/", "the system PATH handed to private servers"),
    ("/usr/sbin", "tests/support/", "the system PATH handed to private servers"),
    ("/usr/bin", "tests/support/", "the system PATH handed to private servers"),
    ("/var/lib/mysql", "compose.yaml", "the MySQL image's data folder (a named volume)"),
    ("/home/payments", None, "the image's user home: Dockerfile's `useradd --create-home payments`"),
    (
        "/tmp/asyncsite-payments-load-redis-",
        "scripts/loadtest.py",
        "a machine-wide lock file: one load test per Redis database on this machine",
    ),
]


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and name != THIS_FILE})


def text_of(name: str) -> str | None:
    """The file's text, or None for a binary file (or one deleted in the work tree)."""
    path = REPO_ROOT / name
    if not path.is_file():
        return None
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# A system folder named alone (`a lock file in /tmp`, `Linux /proc`) is no machine's path, but for
# the folders build machines keep checkouts in.
BUILD_MACHINE_FOLDERS = {"/" + CHECKOUTS, "/" + CHECKOUTS + "space", "/build"}


def allowed(path: str, name: str) -> bool:
    if path.count("/") == 1 and path not in BUILD_MACHINE_FOLDERS:
        return True
    return any(
        path.startswith(prefix) and (where is None or name.startswith(where)) for prefix, where, _ in ALLOWED
    )


def test_the_scan_sees_the_repository() -> None:
    files = repository_files()
    assert {"README.md", "docs/api.md", "compose.yaml", "app/main.py"} <= set(files), files[:20]


def test_nothing_refers_outside_the_repository() -> None:
    found = []
    for name in repository_files():
        text = text_of(name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in OUTSIDE.items():
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
            for match in ABSOLUTE_PATH.finditer(line):
                if not allowed(match.group(0), name):
                    found.append(f"{name}:{number}: absolute path {match.group(0)!r}: {line.strip()[:120]}")
    assert not found, "references outside the repository:\n" + "\n".join(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    """The scan itself: build machines' paths and outside documents are caught, the allowed
    system paths and URLs are not."""
    caught = [
        f"see {UP}/{STEERING}/{SPEC}.md",
        f"the contract ({SPEC} §3)",
        f"cd /{CHECKOUTS}/main && make",
        f"cd /{CHECKOUTS} && make",
        "/home/alice/asyncsite/README.md",
        "written in /root/project",
        "--report-dir /tmp/run",
        'path = "/Users/bob/repo"',
        r"C:\Users\bob\repo",
    ]
    passed = [
        "#!/usr/bin/env bash",
        "curl http://127.0.0.1:8000/api/payments/issue",
        "https://example.com/tmp/x and https://example.com/home/y",
        "COPY --from=build /wheels /wheels",
        "a spec, the OpenAPI specification",
        "WORKDIR /home/payments",
        "relative var/payments.sqlite3 and ./tmp/x",
        "a lock file in `/tmp`, Linux /proc",
    ]

    def flagged(line: str) -> bool:
        if any(pattern.search(line) for pattern in OUTSIDE.values()):
            return True
        return any(not allowed(m.group(0), "README.md") for m in ABSOLUTE_PATH.finditer(line))

    assert [line for line in caught if not flagged(line)] == []
    assert [line for line in passed if flagged(line)] == []
