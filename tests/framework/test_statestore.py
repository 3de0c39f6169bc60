"""corral.framework.statestore: JSON values that survive the process, and atomic transactions."""
import subprocess
import sys

import pytest

from corral.framework.statestore import StateStore


def test_values_survive_a_sigkilled_writer_and_prefixes_list_them(tmp_path):
    path = tmp_path / "state.sqlite"
    program = (f"from corral.framework.statestore import StateStore; s = StateStore({str(path)!r}); "
               "s.save_framework_id('fw-1'); s.put('node/a', {'agent': 'x'}); s.put('node/b', [1, 2]); "
               "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", program]).returncode == -9
    store = StateStore(path)
    assert store.framework_id() == "fw-1"
    assert store.items("node/") == {"node/a": {"agent": "x"}, "node/b": [1, 2]}
    assert store.get("missing", 7) == 7
    store.delete("node/a")
    assert list(store.items("node/")) == ["node/b"]
    store.clear()
    assert store.items() == {}


def test_a_failed_transaction_writes_nothing(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    store.put("k", 1)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put("k", 2)
            store.put("other", 3)
            raise RuntimeError("boom")
    assert store.items() == {"k": 1}
    with pytest.raises(TypeError):
        store.put("bad", object())  # not JSON: refused before anything is written
    assert store.get("bad") is None
