"""`eitp-bench prepare`: put pretrained GPT-2, its tokenizer and WikiText-2 into the local hub cache.

The only command that downloads. Runs never do: they read the cache with local files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def prepare(
    suite: Optional[str] = typer.Argument(
        None, metavar="[SUITE]", help="a bundled suite (standard, full) or a suite YAML: fetch what it needs"
    ),
    model: List[str] = typer.Option([], "--model", metavar="ID", help="a hub model to fetch (weights, config, tokenizer), e.g. gpt2"),
    data: List[str] = typer.Option([], "--data", metavar="NAME", help="a data set to fetch: wikitext-2 (the raw parquet files)"),
    mirror: Optional[Path] = typer.Option(
        None,
        "--mirror",
        metavar="DIR",
        help="import from this local folder instead of the network. Layout (hub repo ids as folders): "
        "DIR/gpt2/{config.json, model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json, merges.txt} "
        "and DIR/Salesforce/wikitext/wikitext-2-raw-v1/{train,validation,test}-00000-of-00001.parquet",
    ),
) -> int:
    """Download the pretrained model, tokenizer and data a suite needs into the Hugging Face hub cache.

    With no arguments: GPT-2 (124M) and WikiText-2 raw, what `standard` and `full` need. The cache is
    the usual one ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). What is already
    cached is not downloaded again. On a machine without internet, run prepare on a connected one
    and copy its cache folder over, or fetch the files by hand and import them with --mirror DIR.
    """
    from eitp_bench.errors import UserError
    from eitp_bench.workloads import assets as A

    wanted = _wanted(suite, model, data)
    if not wanted:
        print(f"suite {suite!r} needs nothing from the Hugging Face hub (synthetic or local data, fresh weights)")
        return 0
    cache = A.hub_cache_dir()
    if mirror is not None and not mirror.is_dir():
        raise UserError(f"--mirror {mirror} is not a folder", fix=f"give a folder laid out like: {A.MIRROR_LAYOUT}")
    done: list[tuple[A.Asset, Path, str]] = []
    failed: list[tuple[A.Asset, str]] = []
    for asset in wanted:
        snap = A.cached_snapshot(asset, cache)
        if snap is not None:
            done.append((asset, snap, "already cached, nothing downloaded"))
            continue
        if mirror is not None:
            snap = A.import_mirror(asset, mirror, cache)
            pinned = f" as the pinned commit {asset.revision} (its files are not checked against the hub)" if asset.revision else ""
            done.append((asset, snap, f"imported from {mirror}{pinned}"))
            continue
        if A.offline_by_env():
            failed.append((asset, "HF_HUB_OFFLINE is set"))
            continue
        print(f"fetching the {asset.what} from {A.hub_endpoint()} ({asset.repo_id}) …", flush=True)
        try:
            A.download(asset, cache)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # no network, hub down, proxy, repo gone: one message at the end
            failed.append((asset, _reason(err)))
            continue
        snap = A.cached_snapshot(asset, cache)
        if snap is None:
            failed.append((asset, f"the hub repo {asset.repo_id!r} does not have the expected files"))
            continue
        done.append((asset, snap, "downloaded"))
    for asset, snap, how in done:
        print(f"{asset.what}: {how}\n  {snap} ({A.human_bytes(A.disk_bytes(snap))})")
    if failed:
        reasons = sorted({r for _, r in failed})
        whats = " and ".join(f"the {a.what}" for a, _ in failed)
        why = reasons[0] if len(reasons) == 1 else "; ".join(f"{a.what}: {r}" for a, r in failed)
        again = " ".join(["eitp-bench prepare", *([suite] if suite else []), *(f"--model {m}" for m in model),
                          *(f"--data {d}" for d in data)])
        raise UserError(
            f"could not fetch {whats} from {A.hub_endpoint()} ({why})",
            fix=f"on a machine with internet run `{again}` and copy its Hugging Face hub cache folder "
            f"(~/.cache/huggingface/hub there) to {cache} here, or point HF_HUB_CACHE at the copy; "
            f"or fetch the files by hand and run `{again} --mirror DIR` (DIR's layout: `eitp-bench prepare --help`)",
        )
    total = sum(A.disk_bytes(s) for _, s, _ in done)
    print(f"hub cache {cache}: {A.human_bytes(total)} for the above; runs read it offline")
    return 0


def _wanted(suite: Optional[str], model: list[str], data: list[str]) -> list:
    """The assets to prepare: the suite's needs plus --model/--data; GPT-2 + WikiText-2 by default."""
    from eitp_bench.workloads import assets as A

    out: list[A.Asset] = []
    if suite is not None:
        from eitp_bench.suite import load_suite

        out += A.suite_assets(load_suite(suite))
    out += [A.model_asset(m, with_tokenizer=True) for m in model]
    out += [A.dataset_asset(d) for d in data]
    if suite is None and not model and not data:
        out = [A.model_asset("gpt2", with_tokenizer=True), A.dataset_asset("wikitext-2")]
    # One entry per repo: a model asset fetches the tokenizer files as well.
    by_repo: dict[tuple[str, str], A.Asset] = {}
    for a in out:
        key = (a.repo_type, a.repo_id)
        prev = by_repo.get(key)
        if prev is None or len(a.required) > len(prev.required) or len(a.patterns) > len(prev.patterns):
            by_repo[key] = a
    return list(by_repo.values())


def _reason(err: BaseException) -> str:
    """The root cause in one line (huggingface_hub wraps a refused connection in a cache-miss error)."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def register(app) -> None:
    app.command("prepare")(prepare)
