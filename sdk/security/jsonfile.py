"""Reading the security files that are JSON (ACLs, HTTP credentials): one wording for a
file that cannot be read or is not JSON, in the error type of the file's kind."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, kind: str, error: type[ValueError]) -> Any:
    """The JSON document in `path`; `error` naming the file (as "`kind` PATH") when it
    cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise error(f"cannot read {kind} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise error(f"{kind} {path} is not JSON: {exc}") from None
