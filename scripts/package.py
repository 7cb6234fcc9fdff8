"""Build the deployment package Azure Functions runs: ``dist/akv-rotator.zip`` (``make package``).

    python scripts/package.py [OUTPUT.zip] [--root TREE]

The zip holds what Core Tools' ``func azure functionapp publish --build local`` and Azure's
remote build leave in ``/home/site/wwwroot``:

- the app: every file git tracks in TREE that ``.funcignore`` does not exclude
  (``function_app.py``, ``host.json``, ``requirements.txt``, ``handlers/``, ``rotation/`` less
  the operator's CLI), read from the work tree;
- ``.python_packages/lib/site-packages/``: ``requirements.txt`` installed by
  ``pip install --target`` for CPython 3.11 on Linux x86-64 from wheels only (``--platform``,
  ``--implementation cp``, ``--python-version 3.11``, ``--abi cp311``, ``--only-binary=:all:``),
  whatever machine builds it, without bytecode (``--no-compile``: no ``.pyc`` anywhere in the
  zip). pip's cache is used as configured, so where the index lets pip cache, a second build
  downloads nothing.

ONE rule decides every entry, app and dependencies alike: ``shipped(path)``, which reads
``.funcignore`` exactly as Core Tools' parser does (``GitIgnoreParser.cs``: patterns anchored at
the root, ``*`` one or more characters within a directory, ``**`` anything, a match ending at a
word boundary) plus the names Core Tools always skips (``FileSystemHelpers.GetLocalFiles``). The
same ``.funcignore`` is read by azd with real gitignore rules, so lines whose meaning differs
between the two readers (``?``, ``[...]``, ``!``, a trailing ``/``, a bare name without its
``**/`` twin, ``**`` inside a pattern) are refused before anything is built.

Only files git tracks are candidates, so nothing lying around in the work tree (caches, local
settings, an editor's scratch file) can reach Azure. The zip is deterministic: entries sorted,
every timestamp 1980-01-01 00:00, modes 0644/0755, so two builds of one tree by one interpreter
are byte-identical (pip writes the building interpreter's path into the RECORD of distributions
with console scripts; the scripts themselves, in ``bin/``, are left out by ``.funcignore``) as
long as the index publishes no newer release of a dependency that requirements.txt does not pin.

Exit status 0 on success; 1 with a one-line reason on stderr otherwise (a requirement without a
wheel for the platform is named).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path("dist") / "akv-rotator.zip"
SITE_PACKAGES = ".python_packages/lib/site-packages"
REQUIRED = ("function_app.py", "host.json", "requirements.txt")

# Azure Functions runs Python 3.11 on Linux x86-64 in the host's python:3.11 image, built on
# Debian 11 (glibc 2.31; github.com/Azure/azure-functions-docker, host/4/bullseye/.../python311).
# manylinux_2_28 is the newest common manylinux tag that glibc runs, and google-re2's cp311
# wheels exist only as manylinux_2_27/2_28, so manylinux2014 (glibc 2.17) alone would not do.
# pip matches --platform literally (manylinux2014 adds only the 2010 and 1 aliases), so every
# glibc from 2.28 down is listed.
PYTHON_VERSION = "3.11"
ABI = "cp311"
GLIBC_MAX = 28
PLATFORMS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MAX, 4, -1)),
             "manylinux2014_x86_64")

# What Core Tools never publishes, whatever .funcignore says (FileSystemHelpers.GetLocalFiles).
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".vscode"})
ALWAYS_SKIPPED_FILES = frozenset({".funcignore", ".gitignore", "local.settings.json",
                                  "project.lock.json"})

ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """A reason the package cannot be built, said in one line."""


# --- .funcignore, read as Core Tools reads it ------------------------------------------------

_ESCAPED = re.compile(r"[\-\[\]/{}()+?.\\^$|]")


def _core_tools_regex(pattern: str) -> str:
    """GitIgnoreParser.PrepareRegexPattern: escape, then ``**`` -> ``(.+)``, ``*`` -> ``([^/]+)``."""
    escaped = _ESCAPED.sub(lambda match: "\\" + match.group(0), pattern)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


def funcignore_problems(text: str) -> list[str]:
    """Lines Core Tools and gitignore (azd) would read differently, each with the fix."""
    lines = [line.strip() for line in text.split("\n")]
    patterns = {line for line in lines if line and not line.startswith("#")}
    problems = []
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#"):
            continue
        where = f".funcignore line {number} {line!r}"
        if line.startswith("!"):
            problems.append(f"{where}: negation is read differently by Core Tools (a negated "
                            "pattern wins whatever its order); exclude less instead")
        elif any(char in line for char in "?[]\\"):
            problems.append(f"{where}: Core Tools reads ?, [, ] and \\ literally")
        elif line.endswith("/"):
            problems.append(f"{where}: drop the trailing '/' (to Core Tools it also needs a "
                            "word character after the slash)")
        elif line.strip("/*") == "":
            problems.append(f"{where}: matches everything")
        elif "**" in line.removeprefix("**/"):
            problems.append(f"{where}: '**' inside a pattern needs one or more characters in "
                            "Core Tools and none in gitignore; use it only as a leading '**/'")
        elif "/" not in line and f"**/{line}" not in patterns:
            problems.append(f"{where}: Core Tools matches it at the root only, gitignore at "
                            f"any depth: write '/{line}' (root) or add '**/{line}' (any depth)")
    return problems


@dataclass(frozen=True)
class FuncIgnore:
    """``.funcignore`` as Core Tools' ``GitIgnoreParser`` applies it to a path from the root."""

    positive: re.Pattern[str] | None
    negative: re.Pattern[str] | None

    @classmethod
    def parse(cls, text: str) -> FuncIgnore:
        positive: list[str] = []
        negative: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            target = positive
            if line.startswith("!"):
                line, target = line[1:], negative
            target.append(line.removeprefix("/"))
        return cls(cls._compile(positive), cls._compile(negative))

    @staticmethod
    def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
        if not patterns:
            return None
        joined = ")|(".join(_core_tools_regex(p) for p in sorted(patterns))
        return re.compile(f"^(({joined}))\\b", re.ASCII)  # ECMAScript \b: ASCII word characters

    def accepts(self, path: str) -> bool:
        if self.negative is not None and self.negative.match(path):
            return True
        return self.positive is None or not self.positive.match(path)


def make_rule(funcignore: FuncIgnore) -> Callable[[str], bool]:
    """The one rule: is this path (relative, '/'-separated) in the package?"""

    def shipped(path: str) -> bool:
        parts = path.split("/")
        if any(part.lower() in ALWAYS_SKIPPED_DIRS for part in parts[:-1]):
            return False
        if parts[-1].lower() in ALWAYS_SKIPPED_FILES:
            return False
        return funcignore.accepts(path)

    return shipped


# --- the pieces ------------------------------------------------------------------------------


def run(command: Sequence[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise PackageError(f"{what}: {command[0]} not found") from exc


def tracked_files(root: Path) -> tuple[list[str], str]:
    """Every file git tracks under ``root`` (the work tree's top), and a label of the tree."""
    top = run(["git", "rev-parse", "--show-toplevel"], root, "listing the tracked files")
    if top.returncode != 0:
        raise PackageError(f"{root} is not a git work tree: the package holds only tracked files")
    if Path(top.stdout.strip()).resolve() != root.resolve():
        raise PackageError(f"{root} is not the top of its git work tree ({top.stdout.strip()})")
    listed = run(["git", "ls-files", "-z", "--cached"], root, "listing the tracked files")
    if listed.returncode != 0:
        raise PackageError(f"git ls-files failed: {listed.stderr.strip()}")
    files = sorted(name for name in listed.stdout.split("\0") if name)
    head = run(["git", "rev-parse", "--short", "--verify", "-q", "HEAD"], root, "naming the tree")
    if head.returncode != 0:
        return files, "a tree with no commit"
    dirty = run(["git", "diff", "--quiet", "HEAD", "--"], root, "naming the tree").returncode != 0
    return files, head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def pip_command(target: Path, requirements: Path) -> list[str]:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--no-compile", "--no-warn-script-location", "--target", str(target), *platforms,
            "--implementation", "cp", "--python-version", PYTHON_VERSION, "--abi", ABI,
            "--only-binary=:all:", "-r", str(requirements)]


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+)")


def install_requirements(root: Path, target: Path) -> None:
    requirements = root / "requirements.txt"
    if not requirements.is_file():
        raise PackageError(f"{requirements} is missing")
    command = pip_command(target, requirements)
    print(f"package.py: pip install --target {SITE_PACKAGES} -r requirements.txt for CPython "
          f"{PYTHON_VERSION} ({ABI}) on manylinux x86_64, glibc <= 2.{GLIBC_MAX}, wheels only",
          flush=True)
    done = run(command, root, "installing requirements.txt")
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    missing = _NO_MATCH.findall(output) or _NO_VERSION.findall(output)
    if missing:
        raise PackageError(
            f"no wheel of {', '.join(dict.fromkeys(missing))} for CPython {PYTHON_VERSION} "
            f"({ABI} or abi3) on manylinux x86_64 (glibc <= 2.{GLIBC_MAX}): requirements.txt "
            "pulls it, directly or through a dependency, and Azure builds nothing from source "
            "here; pin a release that publishes such a wheel")
    errors = [line for line in output.splitlines() if line.startswith("ERROR")] or \
        output.strip().splitlines()[-5:]
    raise PackageError(f"pip install failed (exit {done.returncode}): " + " | ".join(errors))


_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_x86_64$")
_LEGACY_GLIBC = {"manylinux1_x86_64": 5, "manylinux2010_x86_64": 12, "manylinux2014_x86_64": 17}


def check_wheels(site_packages: Path) -> dict[str, int]:
    """Every installed distribution's wheel fits the platform; the glibc minor each one needs."""
    allowed_platforms = {"any", *PLATFORMS, *_LEGACY_GLIBC}
    needs: dict[str, int] = {}
    for wheel in sorted(site_packages.glob("*.dist-info/WHEEL")):
        name = wheel.parent.name.removesuffix(".dist-info")
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
                if line.startswith("Tag:")]
        platforms = {tag.rsplit("-", 1)[-1] for tag in tags} & allowed_platforms
        if not platforms:
            raise PackageError(f"{name} was installed from a wheel for {tags}, not for "
                               "manylinux x86_64")
        glibcs = []
        for platform in platforms:
            found = _MANYLINUX.match(platform)
            glibcs.append(_LEGACY_GLIBC.get(platform, int(found.group(2)) if found else 0))
        needs[name] = min(glibcs)
    return needs


def files_under(directory: Path) -> Iterable[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path


def write_zip(entries: dict[str, Path], output: Path) -> int:
    """A deterministic zip: sorted names, fixed times and modes. Returns the unpacked size."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    unpacked = 0
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            path = entries[name]
            data = path.read_bytes()
            unpacked += len(data)
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the modes below are honoured
            mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, data, compresslevel=6)
    os.replace(partial, output)
    return unpacked


def build(root: Path, output: Path) -> None:
    started = time.monotonic()
    ignore_file = root / ".funcignore"
    if not ignore_file.is_file():
        raise PackageError(f"{ignore_file} is missing: it decides what the package leaves out")
    text = ignore_file.read_text()
    problems = funcignore_problems(text)
    if problems:
        raise PackageError("; ".join(problems))
    shipped = make_rule(FuncIgnore.parse(text))

    tracked, tree = tracked_files(root)
    app = {name: root / name for name in tracked if shipped(name) and (root / name).is_file()}
    gone = [name for name in tracked if shipped(name) and not (root / name).is_file()]
    if gone:
        print(f"package.py: {len(gone)} tracked files are not in the work tree and are left out: "
              + ", ".join(gone[:5]) + (" ..." if len(gone) > 5 else ""))
    for required in REQUIRED:
        if required not in app:
            raise PackageError(f"{required} is not in the package (untracked, or excluded by "
                               ".funcignore); Azure cannot run the app without it")

    with tempfile.TemporaryDirectory(prefix="akv-rotator-package-") as scratch:
        site_packages = Path(scratch) / "site-packages"
        install_requirements(root, site_packages)
        glibc = check_wheels(site_packages)
        dependencies: dict[str, Path] = {}
        left_out = 0
        for path in files_under(site_packages):
            name = f"{SITE_PACKAGES}/{path.relative_to(site_packages).as_posix()}"
            if shipped(name):
                dependencies[name] = path
            else:
                left_out += 1
        unpacked = write_zip({**app, **dependencies}, output)

    size = output.stat().st_size
    print(f"package.py: built {output} from {tree} in {time.monotonic() - started:.1f} s: "
          f"{len(app) + len(dependencies)} files ({len(app)} app files, {len(dependencies)} "
          f"from {len(glibc)} distributions, {left_out} left out by .funcignore), "
          f"{size / 1e6:.1f} MB ({unpacked / 1e6:.1f} MB unpacked)")
    beyond = {name: minor for name, minor in glibc.items() if minor > _LEGACY_GLIBC[PLATFORMS[-1]]}
    if beyond:
        print("package.py: beyond manylinux2014 (glibc 2.17): " + ", ".join(
            f"{name} needs glibc 2.{minor}" for name, minor in sorted(beyond.items()))
            + "; Azure's Python 3.11 image has 2.31")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=None,
                        help=f"the zip to write (default: TREE/{DEFAULT_OUTPUT})")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the git work tree to package (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    output = (args.output or root / DEFAULT_OUTPUT).resolve()
    try:
        if shutil.which("git") is None:
            raise PackageError("git is needed: the package holds only the files git tracks")
        build(root, output)
    except PackageError as exc:
        print(f"package.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
