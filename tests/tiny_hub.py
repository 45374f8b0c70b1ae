"""A tiny stand-in for the hub's `gpt2` and `Salesforce/wikitext`, for tests that must not touch the network.

`write_mirror(root)` lays out `root/gpt2/…` (a 2-layer GPT-2 whose vocabulary is a byte-level BPE
trained on a few sentences, saved with save_pretrained) and
`root/Salesforce/wikitext/wikitext-2-raw-v1/{train,validation,test}-00000-of-00001.parquet`
(a `text` column of lines, as WikiText-2 raw has them). `eitp-bench prepare --mirror root` or
`hub_env(...)` then put it into a temporary hub cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SENTENCES = [
    " = Valkyria Chronicles III = \n",
    "",
    " The game began development in 2010 , carrying over a large portion of the work done on the previous game . \n",
    " It met with positive sales in Japan , and was praised by both Japanese and western critics . \n",
    "",
    " = = Gameplay = = \n",
    " As with previous games in the series , the player controls a squad of soldiers on a map of the battlefield . \n",
    " The story follows the Nameless , a penal military unit serving the nation of Gallia during the war . \n",
]


def _lines(n: int, offset: int) -> list[str]:
    return [SENTENCES[(i + offset) % len(SENTENCES)] for i in range(n)]


def write_mirror(root: Path, *, vocab_size: int = 300, n_positions: int = 128) -> Path:
    import pandas as pd
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    model_dir = root / "gpt2"
    model_dir.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([s for s in SENTENCES if s], trainer=trainer)
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(model_dir)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_layer=2, n_embd=32, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(model_dir)

    data_dir = root / "Salesforce" / "wikitext" / "wikitext-2-raw-v1"
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", 400, 0), ("validation", 80, 3), ("test", 80, 5)):
        pd.DataFrame({"text": _lines(n, offset)}).to_parquet(data_dir / f"{split}-00000-of-00001.parquet")
    return root


def cache_env(monkeypatch, tmp_path: Path) -> Path:
    """Point every Hugging Face cache variable at tmp_path (never ~/.cache) and forbid the network."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing answers there
    return home / "hub"


class FakeHub:
    """A local HTTP server that answers like huggingface.co for the repos in a mirror folder.

    Just the calls snapshot_download makes: repo info, the recursive tree, and resolve (HEAD/GET).
    Every request path is recorded in `requests`. Use as a context manager; `endpoint` is its URL.
    """

    SHA = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, mirror: Path):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mirror, self.requests = mirror, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                hub.requests.append(self.path)
                status, headers, payload = hub.respond(self.path.split("?")[0])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _repo(self, repo_id: str):
        folder = self.mirror / repo_id
        if not folder.is_dir():
            return None
        return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}

    def commit(self, revision: str) -> str:
        """A commit hash asked for is that commit (as on the hub); a branch name resolves to SHA."""
        import re

        return revision if re.fullmatch(r"[0-9a-f]{40}", revision) else self.SHA

    def respond(self, path: str):
        import hashlib
        import json
        import re

        js = {"Content-Type": "application/json"}
        m = re.fullmatch(r"/api/(models|datasets)/(.+)/(revision|tree)/([^/]+)(/.*)?", path)
        if m:
            files = self._repo(m.group(2))
            if files is None:
                return 404, {**js, "X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
            if m.group(3) == "revision":
                info = {"id": m.group(2), "sha": self.commit(m.group(4)), "siblings": [{"rfilename": f} for f in files]}
                return 200, js, json.dumps(info).encode()
            tree = [{"type": "file", "path": f, "size": p.stat().st_size,
                     "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for f, p in files.items()]
            return 200, js, json.dumps(tree).encode()
        m = re.fullmatch(r"/(datasets/)?(.+)/resolve/([^/]+)/(.+)", path)
        if m:
            files = self._repo(m.group(2)) or {}
            p = files.get(m.group(4))
            if p is None:
                return 404, {"X-Error-Code": "EntryNotFound"}, b""
            data = p.read_bytes()
            etag = hashlib.sha256(data).hexdigest()
            headers = {"X-Repo-Commit": self.commit(m.group(3)), "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
            return 200, headers, data
        return 404, {}, b""


# Fixtures shared by the tests that read a hub cache (test_regime, test_inputs): import them by name.


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A mirror folder laid out like the hub (written once per test module)."""
    return write_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """Every Hugging Face variable pointed into tmp_path: an empty, private hub cache."""
    return cache_env(monkeypatch, tmp_path)
