"""Deploying as a Hugging Face Space: every file the Hub would refuse as plain git is an LFS file by .gitattributes.

The Hub's push hook refuses plain git files over 10 MB, and binary ones over 1 MB (huggingface_hub PR #657); the
bundled checkpoints are 23 MB each. `git check-attr` reads .gitattributes as git itself does, so no git-lfs is
needed here. Files git would add (untracked, not ignored) count too, so a new big file fails before its commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO

HUB_PLAIN_FILE_LIMIT = 10 * 1024 * 1024
HUB_PLAIN_BINARY_LIMIT = 1024 * 1024
LFS = {"filter": "lfs", "diff": "lfs", "merge": "lfs", "text": "unset"}


def git(*arguments: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *arguments], cwd=REPO, input=stdin, capture_output=True, text=True, check=True).stdout


def repository_files() -> list[str]:
    return [name for name in git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0") if name]


def attributes(paths: list[str]) -> dict[str, dict[str, str]]:
    """{path: {attribute: value}} for the four attributes an LFS rule sets."""
    fields = git("check-attr", "-z", "--stdin", *LFS, stdin="\0".join(paths) + "\0").split("\0")
    found: dict[str, dict[str, str]] = {}
    for path, attribute, value in zip(fields[0::3], fields[1::3], fields[2::3]):
        found.setdefault(path, {})[attribute] = value
    return found


def is_binary(path: Path) -> bool:
    """Git's own test: a NUL byte in the first 8000 bytes."""
    with path.open("rb") as file:
        return b"\0" in file.read(8000)


def test_every_file_the_hub_refuses_as_plain_git_is_stored_with_lfs() -> None:
    refused_as_plain = []
    for name in repository_files():
        path = REPO / name
        if not path.is_file():
            continue  # deleted in the working tree
        size = path.stat().st_size
        if size > HUB_PLAIN_FILE_LIMIT or (size > HUB_PLAIN_BINARY_LIMIT and is_binary(path)):
            refused_as_plain.append(name)
    assert {
        "assets/checkpoints/poolformer_s12_imagenette.safetensors",
        "assets/checkpoints/identityformer_s12_imagenette.safetensors",
    } <= set(refused_as_plain)
    found = attributes(refused_as_plain)
    assert {name: found[name] for name in refused_as_plain if found[name] != LFS} == {}


def test_gitattributes_holds_only_lfs_rules_for_weights_and_archives() -> None:
    """Every rule is the Hub's form, and it covers each weights format the loaders read."""
    rules = [line.split() for line in (REPO / ".gitattributes").read_text().splitlines() if line and line[0] != "#"]
    assert all(rule[1:] == ["filter=lfs", "diff=lfs", "merge=lfs", "-text"] for rule in rules)
    patterns = {rule[0] for rule in rules}
    assert {"*.safetensors", "*.bin", "*.pth", "*.pt", "*.ckpt", "*.tar", "*.zip"} <= patterns
    text_files = ["app.py", "README.md", "assets/imagenet_classes.json", "assets/examples/cat.jpg"]
    assert all(value == "unspecified" for values in attributes(text_files).values() for value in values.values())
