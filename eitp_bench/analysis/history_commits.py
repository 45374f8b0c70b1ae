"""Each run's git commit for the history site, kept beside the site so that a nightly rebuild reads only
the new runs' provenance.

A series page lists every point with its commit, and a nightly rebuild redraws nearly every page. The
commit lies inside each run's provenance JSON, which the database must parse to extract it (about 45 µs a
run in SQLite): per metric row on every rebuild that would be most of its time on a large store. A stored
run never changes and its `seq` (store order) never moves, so the commits are kept as one small integer
per seq (an index into the distinct commits, -1 for none) in the site folder, and each rebuild extracts
only the runs stored after the newest one it knows. The file is checked against the store (the run id at
its newest seq): a site moved to another store starts the file again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

NONE = -1


class CommitIndex:
    """seq → git commit of the store's ok runs with a finite metric."""

    def __init__(self, codes=None, commits: list[str] | None = None, last_seq: int = 0, last_run_id: str = ""):
        import numpy as np

        self.codes = np.full(0, NONE, dtype=np.int32) if codes is None else codes
        self.commits = commits or []
        self.last_seq = last_seq
        self.last_run_id = last_run_id
        self._code_of = {c: i for i, c in enumerate(self.commits)}

    @classmethod
    def load(cls, path: Path) -> "CommitIndex":
        """The saved index; an empty one when there is none or it cannot be read (it is then rebuilt)."""
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                return cls(data["codes"].astype(np.int32), list(meta["commits"]), int(meta["last_seq"]),
                           str(meta["last_run_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        import numpy as np

        meta = json.dumps({"commits": self.commits, "last_seq": self.last_seq, "last_run_id": self.last_run_id})
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, codes=self.codes, meta=np.array(meta))
        os.replace(partial, path)

    def update(self, store) -> int:
        """Add the runs stored after the newest one known (all of them when the index does not match the
        store); returns how many runs' commits were read."""
        import numpy as np

        from eitp_bench.store import queries as store_queries

        if self.last_seq and store_queries.run_at_seq(store, self.last_seq) != self.last_run_id:
            self.__init__()  # another store, or its runs were replaced: start again
        added = 0
        for seq, run_id, commit in store_queries.run_commits_after(store, self.last_seq):
            if seq >= len(self.codes):
                grown = np.full(max(seq + 1, 2 * len(self.codes)), NONE, dtype=np.int32)
                grown[:len(self.codes)] = self.codes
                self.codes = grown
            self.codes[seq] = NONE if commit is None else self._code(str(commit))
            if seq > self.last_seq:
                self.last_seq, self.last_run_id = seq, str(run_id)
            added += 1
        return added

    def _code(self, commit: str) -> int:
        code = self._code_of.get(commit)
        if code is None:
            code = self._code_of[commit] = len(self.commits)
            self.commits.append(commit)
        return code

    def one(self, seq: int) -> str:
        code = int(self.codes[seq]) if 0 <= seq < len(self.codes) else NONE
        return "" if code == NONE else self.commits[code]

    def of(self, seqs) -> list:
        """The commits ('' for none) of these seqs, in order."""
        import numpy as np

        seqs = np.asarray(seqs, dtype=np.int64)
        inside = seqs < len(self.codes)
        codes = np.full(len(seqs), NONE, dtype=np.int64)
        codes[inside] = self.codes[seqs[inside]]
        named = np.array([*self.commits, ""], dtype=object)
        return named[codes].tolist()  # -1 picks the trailing ''
