"""Which release the checkout is upgraded from, and its virtual environment.

The previous release is the newest one in releases.toml whose commit is an ancestor of HEAD
and is not HEAD itself: a checkout of a release is tested against the one before it. Its
environment is built (once per commit, cached outside the repository) by
deploy/local/release-env.sh, which an operator can run too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASE_ENV = REPO / "deploy" / "local" / "release-env.sh"
# Building the environment compiles libvirt-python the first time: minutes on 2 cores.
BUILD_TIMEOUT = 480.0


class ReleaseUnavailable(Exception):
    """The previous release cannot be found or installed; the message says why."""


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    commit: str
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def virtactor(self) -> Path:
        return self.venv / "bin" / "virtactor"


def object_manifest(release: Release) -> dict[str, str]:
    """The object versions `release` understands, asked of its own code."""
    script = (
        "import json; from schemas import default_registry, obj_manifest; "
        "print(json.dumps(obj_manifest(default_registry)))"
    )
    done = subprocess.run(
        [str(release.python), "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",  # never this checkout's packages
    )
    if done.returncode != 0:
        raise ReleaseUnavailable(f"{release.python} could not list its objects: {done.stderr}")
    return dict(json.loads(done.stdout))


def current_release() -> Release:
    """The checkout under test, in the environment running pytest (an editable install)."""
    venv = Path(sys.prefix)
    version = _git("describe", "--always", "--dirty")
    release = Release(version=f"checkout {version}", commit=_git("rev-parse", "HEAD"), venv=venv)
    if not release.virtactor.exists():
        raise ReleaseUnavailable(f"{release.virtactor} is missing: run make test (or venv.sh)")
    return release


def previous_release(releases_file: Path = REPO / "releases.toml") -> tuple[str, str]:
    """(version, full commit) of the newest release strictly older than HEAD."""
    head = _git("rev-parse", "HEAD")
    try:
        listed = tomllib.loads(releases_file.read_text()).get("release", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseUnavailable(f"cannot read {releases_file}: {exc}") from exc
    for release in reversed(listed):  # the file lists the oldest first
        commit = _resolve(release["commit"])
        if commit is None:
            raise ReleaseUnavailable(
                f"release {release['version']}'s commit {release['commit']} is not in the "
                "repository (a shallow clone? fetch it with git fetch --unshallow)"
            )
        if commit == head:
            continue
        ancestor = subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "--is-ancestor", commit, head],
            capture_output=True,
            check=False,
        )
        if ancestor.returncode == 0:
            return release["version"], commit
    raise ReleaseUnavailable(
        f"no release in {releases_file} is older than HEAD {head[:12]}: cut the first one "
        "(docs/upgrades.md, Cutting a release)"
    )


def build_release_env(commit: str) -> Path:
    """The venv of `commit`, built by release-env.sh unless already cached."""
    try:
        built = subprocess.run(
            [str(RELEASE_ENV), commit],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ReleaseUnavailable(f"{RELEASE_ENV} {commit} took over {exc.timeout}s") from exc
    if built.returncode != 0:
        tail = "\n".join(built.stderr.splitlines()[-15:])
        raise ReleaseUnavailable(f"{RELEASE_ENV} {commit} failed ({built.returncode}):\n{tail}")
    return Path(built.stdout.strip().splitlines()[-1])


def _resolve(commit: str) -> str | None:
    found = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()
