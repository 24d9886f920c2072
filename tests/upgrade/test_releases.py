"""Which release the upgrade tier runs against, and what it says when there is none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.upgrade.releases import REPO, ReleaseUnavailable, build_release_env, previous_release

ABSENT = "0" * 40


def rev(name: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", name], capture_output=True, text=True, check=True
    ).stdout.strip()


def releases_file(tmp_path: Path, *releases: tuple[str, str]) -> Path:
    path = tmp_path / "releases.toml"
    path.write_text(
        "".join(f'[[release]]\nversion = "{v}"\ncommit = "{c}"\n\n' for v, c in releases)
    )
    return path


def test_the_previous_release_is_the_newest_listed_ancestor_that_is_not_head(
    tmp_path: Path,
) -> None:
    listed = releases_file(
        tmp_path, ("0.1.0", rev("HEAD~2")), ("0.2.0", rev("HEAD~1")[:12]), ("0.3.0", rev("HEAD"))
    )
    assert previous_release(listed) == ("0.2.0", rev("HEAD~1"))


def test_a_listed_commit_missing_from_the_repository_is_named(tmp_path: Path) -> None:
    listed = releases_file(tmp_path, ("0.1.0", rev("HEAD~1")), ("0.2.0", ABSENT))
    with pytest.raises(ReleaseUnavailable) as missing:
        previous_release(listed)
    assert str(missing.value) == (
        f"release 0.2.0's commit {ABSENT} is not in the repository "
        "(a shallow clone? fetch it with git fetch --unshallow)"
    )


def test_no_release_older_than_head_is_unavailable(tmp_path: Path) -> None:
    listed = releases_file(tmp_path, ("0.1.0", rev("HEAD")))
    with pytest.raises(ReleaseUnavailable) as none:
        previous_release(listed)
    assert str(none.value) == (
        f"no release in {listed} is older than HEAD {rev('HEAD')[:12]}: cut the first one "
        "(docs/upgrades.md, Cutting a release)"
    )


def test_the_environment_of_a_commit_not_in_the_repository_is_refused_by_release_env() -> None:
    with pytest.raises(ReleaseUnavailable) as refused:
        build_release_env(ABSENT)
    assert str(refused.value).endswith(
        f"release-env.sh {ABSENT} failed (2):\n"
        f"release-env: commit {ABSENT} is not in the repository at {REPO}"
    )
