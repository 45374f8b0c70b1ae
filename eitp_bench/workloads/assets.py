"""What a suite needs on local disk (pretrained weights, tokenizer, WikiText-2) and where it lives.

Everything downloadable lives in the ordinary Hugging Face hub cache
(`<cache>/models--gpt2/snapshots/<rev>/…`, `refs/main`), so transformers' own loaders find it.
`eitp-bench prepare` fills that cache; the workloads only ever read it (local files only).

This module is cheap on purpose: the preflight of `run` calls `missing_assets(suite)`, which
looks at files only. It imports neither torch nor transformers nor huggingface_hub.
"""

from __future__ import annotations

import fnmatch
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

WIKITEXT2_REPO = "Salesforce/wikitext"
WIKITEXT2_CONFIG = "wikitext-2-raw-v1"
DATASET_ALIASES = {"wikitext-2": "wikitext-2", "wikitext2": "wikitext-2", "wikitext-2-raw-v1": "wikitext-2"}

MODEL_PATTERNS = ("config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json")
TOKENIZER_PATTERNS = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "config.json",
)

# A hub id: "gpt2" or "owner/name" (what transformers would look up in the cache).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# Names of one hub repository: the hub redirects the old short names to their owners' namespaces,
# but the cache keeps one folder per name asked for, so a cache filled under either is found for both.
HUB_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
    "wikitext": "Salesforce/wikitext",
}
_ALIAS_OF = {**HUB_ALIASES, **{v: k for k, v in HUB_ALIASES.items()}}


@dataclass(frozen=True)
class Asset:
    """One thing to have in the hub cache: a repo, the files to fetch, and the files that must be there."""

    what: str  # for messages: "pretrained model 'gpt2'"
    repo_id: str
    repo_type: str  # "model" or "dataset"
    patterns: tuple[str, ...]  # what prepare fetches (allow_patterns)
    required: tuple[tuple[str, ...], ...]  # every group needs one matching file (globs, repo-relative)
    prepare_args: str  # "--model gpt2" / "--data wikitext-2"
    revision: Optional[str] = None  # a commit hash to fetch and read; None: whatever the cache holds


_MODEL_REQUIRED = (("config.json",), ("model*.safetensors", "pytorch_model*.bin"))
_TOKENIZER_REQUIRED = (("tokenizer_config.json",), ("tokenizer.json", "merges.txt"))


def model_asset(name: str, with_tokenizer: bool = False, revision: Optional[str] = None) -> Asset:
    """Weights and config of a hub model; prepare fetches its tokenizer too (small, same repo)."""
    return Asset(
        what=f"pretrained model {name!r}" + (" and its tokenizer" if with_tokenizer else ""),
        repo_id=name,
        repo_type="model",
        patterns=MODEL_PATTERNS + TOKENIZER_PATTERNS,
        required=_MODEL_REQUIRED + (_TOKENIZER_REQUIRED if with_tokenizer else ()),
        prepare_args=f"--model {name}",
        revision=revision,
    )


def tokenizer_asset(name: str = "gpt2") -> Asset:
    return Asset(
        what=f"tokenizer {name!r}",
        repo_id=name,
        repo_type="model",
        patterns=TOKENIZER_PATTERNS,
        required=_TOKENIZER_REQUIRED,
        prepare_args=f"--model {name}",
    )


def dataset_asset(name: str = "wikitext-2", revision: Optional[str] = None) -> Asset:
    key = DATASET_ALIASES.get(name)
    if key is None:
        from eitp_bench.errors import UserError

        raise UserError(f"unknown data set {name!r}", fix="use --data wikitext-2")
    return Asset(
        what="data set WikiText-2 (raw)",
        repo_id=WIKITEXT2_REPO,
        repo_type="dataset",
        patterns=(f"{WIKITEXT2_CONFIG}/*",),
        required=(
            (f"{WIKITEXT2_CONFIG}/train-*.parquet",),
            (f"{WIKITEXT2_CONFIG}/validation-*.parquet",),
        ),
        prepare_args="--data wikitext-2",
        revision=revision,
    )


# ----------------------------------------------------------------------------- the cache layout


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it, read from the environment now (not at import).

    HF_HUB_CACHE, else the legacy HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
    """
    env = os.environ
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = env.get("HF_HOME") or os.path.join(xdg, "huggingface")
    hub = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(hub)))


def repo_folder(repo_id: str, repo_type: str, cache: Optional[Path] = None) -> Path:
    """`<cache>/models--owner--name` (huggingface_hub's repo_folder_name)."""
    return (cache or hub_cache_dir()) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def same_repo(repo_id: str) -> list[str]:
    """The names the hub cache may hold `repo_id` under: itself first, then its alias (gpt2 ↔ openai-community/gpt2)."""
    alias = _ALIAS_OF.get(repo_id)
    return [repo_id, alias] if alias else [repo_id]


def snapshots(repo_id: str, repo_type: str, cache: Optional[Path] = None, revision: Optional[str] = None) -> list[Path]:
    """The cached snapshots that can serve `repo_id` at `revision`, best first, under each of its names.

    A pinned revision (a commit hash) is its own folder, `snapshots/<hash>`. With none, the snapshot
    `refs/main` points to, else the newest one (prepare of a pinned hash writes no refs/main).
    """
    found = []
    for name in same_repo(repo_id):
        folder = repo_folder(name, repo_type, cache) / "snapshots"
        if revision:  # huggingface_hub's own lookup: refs/<revision> names a commit, else it is one
            candidates = [folder / _read_ref(folder.parent, revision), folder / revision]
        else:
            try:
                main = (folder.parent / "refs" / "main").read_text(encoding="utf-8").strip()
            except OSError:
                main = ""
            others = sorted((p for p in folder.glob("*") if p.name != main), key=_mtime, reverse=True)
            candidates = ([folder / main] if main else []) + others
        found += [c for c in candidates if c.is_dir()]
    return found


def _read_ref(repo: Path, revision: str) -> str:
    try:
        return (repo / "refs" / revision).read_text(encoding="utf-8").strip() or revision
    except OSError:
        return revision


MIRROR_NOTES = "eitp-bench-mirror.json"  # in a repo's cache folder: snapshots imported with --mirror


def mirror_note(snap: Path) -> Optional[str]:
    """Where a --mirror import came from, for a snapshot prepare imported; None for a hub download."""
    import json

    try:
        notes = json.loads((snap.parent.parent / MIRROR_NOTES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    note = notes.get(snap.name) if isinstance(notes, dict) else None
    return str(note) if note is not None else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def snapshot_dir(
    repo_id: str, repo_type: str, cache: Optional[Path] = None, revision: Optional[str] = None
) -> Optional[Path]:
    """The snapshot the loaders read for `repo_id` at `revision` (see `snapshots`); None when there is none."""
    found = snapshots(repo_id, repo_type, cache, revision)
    return found[0] if found else None


def snapshot_files(snap: Path) -> list[str]:
    """Repo-relative posix paths of the files in a snapshot (dangling links are not files)."""
    return sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())


def _unmet(files: list[str], asset: Asset) -> list[str]:
    return [" or ".join(group) for group in asset.required if not any(fnmatch.filter(files, g) for g in group)]


def cached_snapshot(asset: Asset, cache: Optional[Path] = None) -> Optional[Path]:
    """The snapshot holding every required file of `asset` (at its revision, under any of its names), or None.

    Its folder name is the hub commit it was downloaded at (a content hash for a --mirror import).
    """
    for snap in snapshots(asset.repo_id, asset.repo_type, cache, asset.revision):
        if not _unmet(snapshot_files(snap), asset):
            return snap
    return None


def disk_bytes(snap: Path) -> int:
    """Bytes the snapshot's files take (blobs counted once, following the cache's symlinks)."""
    seen, total = set(), 0
    for p in snap.rglob("*"):
        if p.is_file():
            real = p.resolve()
            if real not in seen:
                seen.add(real)
                total += real.stat().st_size
    return total


def wikitext2_split_files(split: str, cache: Optional[Path] = None, revision: Optional[str] = None) -> list[Path]:
    """The cached parquet files of one WikiText-2 (raw) split (at `revision`); empty when not cached."""
    snap = cached_snapshot(dataset_asset("wikitext-2", revision), cache)
    if snap is None:
        return []
    return sorted((snap / WIKITEXT2_CONFIG).glob(f"{split}-*.parquet"))


def is_hub_id(name: str) -> bool:
    """True for a name the loaders look up in the hub cache; False for a local directory path."""
    return not os.path.isdir(name) and not name.startswith((".", "/", "~")) and bool(_HUB_ID.match(name))


# ----------------------------------------------------------------------------- what a suite needs


def suite_assets(suite) -> list[Asset]:
    """The cache assets a suite needs (local directories and files are not cache assets)."""
    needs: list[Asset] = []
    pretrained = suite.pretrained
    data = suite.data
    gpt2_tokens = data.kind in ("text_file", "wikitext2") and data.tokenizer == "gpt2"
    gpt2_model = pretrained in same_repo("gpt2")
    if pretrained and is_hub_id(pretrained):
        needs.append(model_asset(pretrained, with_tokenizer=gpt2_tokens and gpt2_model, revision=suite.model.revision))
    if gpt2_tokens and not gpt2_model:
        needs.append(tokenizer_asset("gpt2"))
    if data.kind == "wikitext2":
        needs.append(dataset_asset("wikitext-2", revision=data.revision))
    return needs


def resolved_inputs(suite) -> dict:
    """What a run of `suite` reads, as found in the cache now: per input its repo, the snapshot's
    commit (the folder name: a hub commit hash, or a content hash for a --mirror import) and the
    revision the suite pinned (None: whatever the cache holds). Files only; {} for synthetic data."""
    out: dict = {}
    for asset in suite_assets(suite):
        snap = cached_snapshot(asset)
        key = {"dataset": "data"}.get(asset.repo_type, "tokenizer" if asset.what.startswith("tokenizer") else "model")
        out[key] = {
            "repo": asset.repo_id,
            "cached_as": snap.parent.parent.name if snap is not None else None,
            "revision": snap.name if snap is not None else None,
            "pinned": asset.revision,
            "mirror": mirror_note(snap) if snap is not None else None,
        }
    pretrained = suite.pretrained
    if pretrained and not is_hub_id(pretrained):
        out["model"] = {"path": pretrained, "revision": None, "pinned": None}
    return out


def _revision_field(asset: Asset) -> str:
    return "data.revision" if asset.repo_type == "dataset" else "model.revision"


def prepare_hint(suite, assets: list[Asset]) -> str:
    """The command that fetches `assets`: `eitp-bench prepare standard` where the bundled suite of
    that name needs just these (no --set changed them), else the explicit --model/--data flags."""
    from eitp_bench.suite import bundled_suites, load_suite

    args = sorted({a.prepare_args for a in assets})
    if suite.name in bundled_suites():
        bundled = {a.prepare_args for a in suite_assets(load_suite(suite.name))}
        if set(args) <= bundled:
            return f"eitp-bench prepare {suite.name}"
    return "eitp-bench prepare " + " ".join(args)


def missing_assets(suite) -> list[dict]:
    """What this machine lacks on disk to run `suite`: [{"what", "why", "fix", "field"}]; empty when nothing.

    Files only: no torch, no weights loaded, no network.
    """
    cache = hub_cache_dir()
    out: list[dict] = []
    absent = [a for a in suite_assets(suite) if cached_snapshot(a, cache) is None]
    for asset in absent:
        snap = snapshot_dir(asset.repo_id, asset.repo_type, cache, asset.revision)
        if snap is None:
            why = f"not in the local Hugging Face cache ({repo_folder(asset.repo_id, asset.repo_type, cache)})"
            if asset.revision and snapshots(asset.repo_id, asset.repo_type, cache):
                why = (f"not in the local Hugging Face cache at the pinned revision {asset.revision} (other revisions "
                       f"are; --set {_revision_field(asset)}=null runs on whatever the cache holds)")
        else:
            lacking = ", ".join(_unmet(snapshot_files(snap), asset))
            why = f"incomplete in the local Hugging Face cache ({snap}): no {lacking}"
        field = {"model": "model.pretrained" if asset.what.startswith("pretrained") else "data.tokenizer"}.get(
            asset.repo_type, "data.kind")
        out.append({"what": asset.what, "why": why, "fix": prepare_hint(suite, absent), "field": field})
    pretrained = suite.pretrained
    if pretrained and not is_hub_id(pretrained):
        path = Path(os.path.expanduser(pretrained))
        if not (path / "config.json").is_file():
            why = "has no config.json" if path.is_dir() else "does not exist"
            out.append({
                "what": f"pretrained model directory {pretrained!r} (model.pretrained)",
                "why": why,
                "fix": "give a directory written by save_pretrained, or a hub id cached by eitp-bench prepare",
                "field": "model.pretrained",
            })
    if suite.data.kind == "text_file" and suite.data.text_file and not Path(suite.data.text_file).is_file():
        out.append({
            "what": f"text file {suite.data.text_file!r} (data.text_file)",
            "why": "does not exist",
            "fix": "give a path to a local text file",
            "field": "data.text_file",
        })
    return out


# ----------------------------------------------------------------------------- filling the cache (prepare)

MIRROR_LAYOUT = (
    "DIR/<model id>/config.json, model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json, merges.txt "
    "(e.g. DIR/gpt2/…) and DIR/Salesforce/wikitext/wikitext-2-raw-v1/{train,validation,test}-*.parquet"
)


def offline_by_env() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value, as huggingface_hub reads it."""
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def download(asset: Asset, cache: Optional[Path] = None) -> Path:
    """Fetch `asset` into the hub cache with huggingface_hub (its own progress bars); the snapshot path.

    Exceptions from the network are left to the caller, which names every asset it could not fetch.
    """
    from huggingface_hub import snapshot_download

    cache = cache or hub_cache_dir()
    # endpoint and cache_dir passed explicitly: huggingface_hub reads its defaults once, at import.
    with _quiet_retries():
        path = snapshot_download(
            asset.repo_id,
            repo_type=asset.repo_type,
            revision=asset.revision,  # None: the hub's main
            allow_patterns=list(asset.patterns),
            cache_dir=str(cache),
            endpoint=hub_endpoint(),
        )
    return Path(path)


@contextmanager
def _quiet_retries():
    """huggingface_hub (2.x) retries a failed request five times and logs two warning lines to stderr for
    each try. The retries stay (a flaky network recovers); their lines go: `prepare` says in one message
    what it could not fetch and how to get it, which a page of retry lines above it would bury."""
    import logging

    http_log = logging.getLogger("huggingface_hub.utils._http")
    level = http_log.level
    http_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        http_log.setLevel(level)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _blob_for(source: Path, blobs: Path) -> Path:
    """The blob holding `source`'s bytes: itself if it already is one, else a copy named by its sha256."""
    real = source.resolve()
    if real.parent == blobs.resolve():
        return real
    blob = blobs / _sha256(real)
    if not blob.exists():
        import shutil

        tmp = blob.with_name(blob.name + ".incomplete")
        shutil.copyfile(real, tmp)
        os.replace(tmp, blob)  # a blob is whole or absent, even if the copy is interrupted
    return blob


def import_mirror(asset: Asset, mirror: Path, cache: Optional[Path] = None) -> Path:
    """Copy `asset` from a local mirror (`mirror/<repo id>/<repo files>`) into the hub cache layout.

    Writes blobs/<sha256>, snapshots/<rev>/<file> (relative symlinks, or copies where links are
    not allowed) and refs/main, as huggingface_hub does, so the usual loaders find it. <rev> is the
    asset's pinned revision (the user vouches the mirror holds that commit: nothing offline can check
    it, so the import is noted in MIRROR_NOTES and runs record it), else a hash of the contents: the
    same mirror gives the same snapshot. Files of the current snapshot that the mirror does not
    replace are kept (a tokenizer fetched earlier stays).
    """
    import hashlib
    import shutil

    from eitp_bench.errors import UserError

    cache = cache or hub_cache_dir()
    src = mirror / asset.repo_id
    if not src.is_dir():
        raise UserError(
            f"--mirror {mirror}: no folder {asset.repo_id}/ for the {asset.what}",
            fix=f"lay the mirror out like the hub: {MIRROR_LAYOUT}",
        )
    files = [f for f in snapshot_files(src) if any(fnmatch.fnmatch(f, p) for p in asset.patterns)]
    unmet = _unmet(files, asset)
    if unmet:
        raise UserError(
            f"--mirror {src} lacks {'; '.join(unmet)} for the {asset.what}",
            fix=f"copy those files from the hub repo {asset.repo_id!r} there; layout: {MIRROR_LAYOUT}",
        )
    folder = repo_folder(asset.repo_id, asset.repo_type, cache)
    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    sources: dict[str, Path] = {}
    old = snapshot_dir(asset.repo_id, asset.repo_type, cache)
    if old is not None:
        sources.update({f: old / f for f in snapshot_files(old)})
    sources.update({f: src / f for f in files})
    entries = {f: _blob_for(p, blobs) for f, p in sources.items()}
    content = hashlib.sha1("\n".join(f"{f} {b.name}" for f, b in sorted(entries.items())).encode()).hexdigest()
    rev = asset.revision or content
    snap = folder / "snapshots" / rev
    for f, blob in entries.items():
        link = snap / f
        if link.is_file():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():  # dangling
            link.unlink()
        try:
            os.symlink(os.path.relpath(blob, link.parent), link)
        except OSError:  # no symlinks here (some Windows set-ups): huggingface_hub copies too
            shutil.copyfile(blob, link)
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    tmp = refs / "main.incomplete"
    tmp.write_text(rev, encoding="utf-8")
    os.replace(tmp, refs / "main")
    _note_mirror(folder, rev, f"imported from {mirror} (files with content hash {content}; not checked against the hub)")
    return snap


def _note_mirror(folder: Path, rev: str, note: str) -> None:
    import json

    path = folder / MIRROR_NOTES
    try:
        notes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        notes = {}
    notes[rev] = note
    tmp = path.with_name(path.name + ".incomplete")
    tmp.write_text(json.dumps(notes, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
