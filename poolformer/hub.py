"""PoolFormer repos on the Hugging Face Hub: find them in the local cache, or download them.

A repo is `owner/name`, optionally pinned as `owner/name@revision`: the official weights
(`sail/poolformer_<variant>`) or any fine-tune in transformers format (config.json with model_type
poolformer, and model.safetensors or pytorch_model.bin). A download asks in this order, so each failure
is told apart and nothing large is fetched before the small checks pass:

1. one quick HEAD of config.json without retries: an unreachable, silent or failing Hub, an unknown repo or
   revision, or a repo without config.json is reported within PROBE_TIMEOUT_S (huggingface_hub on its own
   retries with back-off for a minute or more);
2. config.json is fetched and must describe a PoolFormer we compute exactly (poolformer/transformers_config.py);
3. a HEAD per weights file picks the first one the `Rules` allow and checks its size against their cap;
4. the weights are fetched.

Every failure becomes a HubError whose text is one line: what went wrong and what to do. A download that
breaks off leaves nothing in the cache: huggingface_hub writes to a temporary file and moves it into place
only once it is complete, so the next attempt starts clean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import tqdm as hub_progress_bar
from huggingface_hub.utils import validate_repo_id

from poolformer.model import VARIANTS, Variant
from poolformer.transformers_config import config_problem

CONFIG_FILE = "config.json"
# transformers-format weights, in order of preference; sail/poolformer_s24 and s36 publish only the .bin.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROBE_TIMEOUT_S = 5  # at most this long for the first answer (or HF_HUB_ETAG_TIMEOUT, if lower)
MAX_CONFIG_BYTES = 1_000_000  # a PoolFormer config.json is a few kB; anything this large is not one
# What a name that is meant as a file looks like; such a name is never taken for a repo.
FILE_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".tar", ".json")
REF = re.compile(r"(?P<repo>[^/@\s]+/[^/@\s]+)(?:@(?P<revision>[\w.\-/]+))?")

Progress = Callable[[int, int | None], None]  # (bytes received, total bytes or None)


class HubError(ValueError):
    """A repo is neither cached nor downloadable; str is one line, `reason` its short core."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class HubRepo:
    """A model repo on the Hub, optionally at a revision; `variant` is set for the official sail/ repos."""

    repo_id: str
    revision: str | None = None
    variant: str | None = None

    @property
    def ref(self) -> str:
        """The repo as a user writes it: owner/name or owner/name@revision."""
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    @property
    def title(self) -> str:
        """How messages name it, as the subject of a sentence."""
        return f"the official {self.variant} weights ({self.repo_id})" if self.variant else self.ref

    @property
    def verb(self) -> str:
        """"are" after the title of official weights, "is" after a repo's name."""
        return "are" if self.variant else "is"


@dataclass(frozen=True)
class Rules:
    """What a download may fetch: the weights files allowed, in order of preference, and their size cap;
    `one_at_a_time`: a server runs at most one download under these rules at once."""

    weight_files: tuple[str, ...] = WEIGHT_FILES
    max_weights_bytes: int | None = None
    one_at_a_time: bool = False


OPEN = Rules()  # the operator's and the CLI's choice: any transformers weights file, any size


def official(variant: Variant) -> HubRepo:
    return HubRepo(variant.hub_repo, variant=variant.name)


def parse_ref(text: str) -> HubRepo | None:
    """`owner/name` or `owner/name@revision` as a HubRepo; None for anything else (a path, a file name)."""
    match = REF.fullmatch(text)
    if match is None or match["repo"].lower().endswith(FILE_SUFFIXES):
        return None
    try:
        validate_repo_id(match["repo"])
    except HFValidationError:
        return None
    return HubRepo(match["repo"], match["revision"])


def is_offline() -> bool:
    """HF_HUB_OFFLINE is set (huggingface_hub reads it once, at import)."""
    return bool(hub_constants.HF_HUB_OFFLINE)


def cache_dirs() -> list[str]:
    """HF_HOME (token, settings) and the hub cache, which may lie elsewhere: what a server must never serve."""
    return [hub_constants.HF_HOME, hub_constants.HF_HUB_CACHE]


def cached_files(repo: HubRepo, rules: Rules = OPEN) -> tuple[Path, Path] | None:
    """(config.json, weights file) from the local HF cache, or None when either is missing. No network."""
    config = try_to_load_from_cache(repo.repo_id, CONFIG_FILE, revision=repo.revision)
    if not isinstance(config, str):
        return None
    for name in rules.weight_files:
        weights = try_to_load_from_cache(repo.repo_id, name, revision=repo.revision)
        if isinstance(weights, str):
            return Path(config), Path(weights)
    return None


def hub_weights_cached(variant: str) -> bool:
    """Are the official weights of `variant` ("s12" ... "m48") in the local HF cache? Never touches the network."""
    return variant in VARIANTS and cached_files(official(VARIANTS[variant])) is not None


class _Missing(Exception):
    """The repo exists but lacks the file asked for."""


def download(repo: HubRepo, progress: Progress | None = None, rules: Rules = OPEN) -> tuple[Path, Path]:
    """Fetch config.json and the weights into the HF cache, checking each step (see the module docstring).

    `progress` replaces the console progress bar of the weights download.
    """
    if is_offline():
        raise unavailable(repo, "HF_HUB_OFFLINE is set")
    try:
        config_size = _file_size(repo, CONFIG_FILE)
    except _Missing:
        problem = f"has no {CONFIG_FILE}, so it is not a transformers model"
        raise HubError(f"{repo.ref} {problem}", problem) from None
    if config_size is not None and config_size > MAX_CONFIG_BYTES:
        raise _refused(repo, f"its {CONFIG_FILE} is {config_size / 1e6:.1f} MB, far too large for a PoolFormer config")
    config = _fetch(repo, CONFIG_FILE)
    try:
        problem = config_problem(json.loads(config.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        problem = f"has a {CONFIG_FILE} that is not valid JSON ({_first_line(error)})"
    if problem:
        raise HubError(f"{repo.ref} {problem}", problem)
    weights_name = _pick_weights_file(repo, rules)
    weights = _fetch(repo, weights_name, _reporting_bar(progress) if progress else None)
    return config, weights


def _fetch(repo: HubRepo, name: str, bar: type[hub_progress_bar] | None = None) -> Path:
    """One file into the cache (or found there); any failure names the file."""
    try:
        return Path(hf_hub_download(repo.repo_id, name, revision=repo.revision, tqdm_class=bar))
    except Exception as error:  # network, HTTP, disk: huggingface_hub raises many types
        reason = f"downloading {name} failed ({_first_line(error)}); nothing partial was kept"
        raise unavailable(repo, reason, retry=True) from None


def _pick_weights_file(repo: HubRepo, rules: Rules) -> str:
    """The first weights file the rules allow that the repo has, within their size cap; else a clear refusal."""
    not_allowed = []
    for name in WEIGHT_FILES:
        try:
            size = _file_size(repo, name)
        except _Missing:
            continue
        if name not in rules.weight_files:
            not_allowed.append(name)
        elif rules.max_weights_bytes is not None and (size is None or size > rules.max_weights_bytes):
            told = "of unknown size" if size is None else f"{size / 1e6:.0f} MB"
            raise _refused(repo, f"its {name} is {told}, over this server's {rules.max_weights_bytes / 1e6:.0f} MB limit")
        else:
            return name
    if not_allowed:  # e.g. only a pickle, on a server that takes safetensors only
        raise _refused(repo, f"it publishes only {', '.join(not_allowed)}; this server accepts only {' or '.join(rules.weight_files)}")
    problem = f"holds no weights: neither {' nor '.join(WEIGHT_FILES)}"
    raise HubError(f"{repo.ref} {problem}", problem)


def _file_size(repo: HubRepo, name: str) -> int | None:
    """One quick HEAD without retries: the file's size in bytes (None if the Hub doesn't say).

    Raises _Missing when the repo lacks the file, and a HubError that tells every other failure apart.
    """
    timeout = min(PROBE_TIMEOUT_S, hub_constants.HF_HUB_ETAG_TIMEOUT)
    try:
        return get_hf_file_metadata(hf_hub_url(repo.repo_id, name, revision=repo.revision), timeout=timeout).size
    except GatedRepoError:
        problem = "is gated on the Hub: accept its terms on huggingface.co, then `hf auth login`"
    except RepositoryNotFoundError:
        problem = "was not found on the Hub: check the name (a private repo needs `hf auth login`)"
    except RevisionNotFoundError:
        problem = f"has no revision {repo.revision!r} on the Hub"
    except EntryNotFoundError:
        raise _Missing(name) from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "error"
        raise unavailable(repo, f"the Hub answered HTTP {status}", retry=True) from None
    except Exception as error:  # connection errors come from the HTTP client huggingface_hub bundles
        if "timeout" in type(error).__name__.lower():
            raise unavailable(repo, f"the Hub did not answer within {timeout} s", retry=True) from None
        raise unavailable(repo, f"the Hub can't be reached ({_first_line(error)})", retry=True) from None
    raise HubError(f"{repo.repo_id} {problem}", problem)


def _refused(repo: HubRepo, reason: str) -> HubError:
    return HubError(f"{repo.ref} was not downloaded: {reason}", reason)


def unavailable(repo: HubRepo, reason: str, *, retry: bool = False) -> HubError:
    """The one-line error for a repo that is not cached and could not be fetched, with what to do."""
    fetch = "try again in a while" if retry else "run once with network access"
    command = f"hf download {repo.repo_id}" + (f" --revision {repo.revision}" if repo.revision else "")
    return HubError(
        f"{repo.title} {repo.verb} not in the local Hugging Face cache and {reason}; {fetch}, or `{command}`, "
        "or use a bundled model (CLI: --weights PATH to a local checkpoint)",
        reason,
    )


def damaged(repo: HubRepo, cached: Path, problem: str) -> str:
    """The one-line error for a cached file that can't be read: name the real file and the fix."""
    blob = cached.resolve()
    return (
        f"the cached file {blob} ({repo.ref} {cached.name}) can't be used ({problem}); delete it "
        f"(it is downloaded again on next use), or check the cache with `hf cache verify {repo.repo_id}`"
    )


def _reporting_bar(progress: Progress) -> type[hub_progress_bar]:
    """A silent progress-bar class for hf_hub_download that hands each update to `progress`."""

    class ReportingBar(hub_progress_bar):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True  # no console bar; a disabled tqdm stops counting, so count here
            super().__init__(*args, **kwargs)
            self.received = kwargs.get("initial", 0)
            self.expected = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self.received += int(n or 0)
            progress(self.received, self.expected)
            return super().update(n)

    return ReportingBar


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
