#!/usr/bin/env bash
# A virtual environment with release <commit> of virtactor installed, built once per commit
# and kept: prints the venv's path (the only line on stdout; progress goes to stderr).
#   release-env.sh COMMIT
#
# The commit is checked out with `git worktree add --detach` into
# $VIRTACTOR_RELEASE_CACHE/<full commit>/src (default /var/cache/virtactor/upgrade), outside
# the repository, and installed (not editable) into .../venv. The marker file .../installed is
# written only after a complete install, so an interrupted build is redone on the next run; a
# lock on .../lock keeps two runs from building the same commit at once. The upgrade tier
# (tests/upgrade/) runs the previous release from here; an operator can too:
#   "$(deploy/local/release-env.sh f6190fd)/bin/virtactor" run --config agent.toml
set -euo pipefail

commit_arg="${1:?usage: release-env.sh COMMIT}"
cache="${VIRTACTOR_RELEASE_CACHE:-/var/cache/virtactor/upgrade}"
python="${PYTHON:-python3}"
lock_wait="${VIRTACTOR_RELEASE_LOCK_WAIT:-1200}"
repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

say() { echo "release-env: $*" >&2; }

if ! commit="$(git -C "$repo" rev-parse --verify --quiet "${commit_arg}^{commit}")"; then
    say "commit $commit_arg is not in the repository at $repo"
    exit 2
fi
dir="$cache/$commit"
src="$dir/src"
venv="$dir/venv"
marker="$dir/installed"
mkdir -p "$dir"

exec 9>"$dir/lock"
if ! flock -w "$lock_wait" 9; then
    say "another build of $commit still holds $dir/lock after ${lock_wait}s"
    exit 3
fi

if [ -f "$marker" ] && [ -x "$venv/bin/virtactor" ]; then
    echo "$venv"
    exit 0
fi

# Worktrees whose directory was deleted (a cleared cache) would keep their commit "checked
# out" in the repository's bookkeeping; forget them first.
git -C "$repo" worktree prune
if [ "$(git -C "$src" rev-parse --verify --quiet HEAD 2>/dev/null)" != "$commit" ]; then
    rm -rf "$src"
    git -C "$repo" worktree prune
    say "checking out $commit into $src"
    git -C "$repo" worktree add --detach --force "$src" "$commit" >&2
fi

rm -rf "$venv"
say "building $venv with $($python --version) (libvirt-python compiles: a few minutes)"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q "$src" >&2
"$venv/bin/virtactor" --help >/dev/null
printf 'commit=%s\npython=%s\nbuilt=%s\n' \
    "$commit" "$("$venv/bin/python" --version 2>&1)" "$(date -u +%FT%TZ)" >"$marker.tmp"
mv "$marker.tmp" "$marker"
echo "$venv"
