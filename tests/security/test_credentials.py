"""HTTP credentials (basic and bearer) and executor tokens."""
from __future__ import annotations

import base64
import json

import pytest

from corral.security.credentials import CredentialsError, ExecutorTokens, HttpCredentials, Unauthenticated


def basic(principal: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()


def test_basic_and_bearer_credentials_prove_a_principal(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"credentials": [{"principal": "ops", "secret": "s3cret"},
                                                {"principal": "dash", "token": "tok-123"}]}))
    creds = HttpCredentials(path)
    assert creds.authenticate(basic("ops", "s3cret")) == "ops"
    assert creds.authenticate("Bearer tok-123") == "dash"
    for header, why in [(None, "no credentials"), (basic("ops", "wrong"), "wrong secret"),
                        ("Bearer nope", "unknown bearer"), ("Digest x", "unsupported"), ("Basic !!!", "malformed")]:
        with pytest.raises(Unauthenticated, match=why):
            creds.authenticate(header)
    # a changed file is read again; a broken change keeps the last good one
    path.write_text(json.dumps({"credentials": [{"principal": "ops", "secret": "rotated"}]}))
    import os
    os.utime(path, ns=(1, 10**18))
    assert creds.authenticate(basic("ops", "rotated")) == "ops"
    path.write_text("{broken")
    os.utime(path, ns=(1, 2 * 10**18))
    assert creds.authenticate(basic("ops", "rotated")) == "ops"


@pytest.mark.parametrize("doc, message", [
    ({}, "expected"),
    ({"credentials": [{"principal": "a:b", "secret": "x"}]}, "principal"),
    ({"credentials": [{"principal": "ops"}]}, "neither"),
    ({"credentials": [{"principal": "ops", "secret": ""}]}, "non-empty"),
])
def test_bad_credentials_files_are_named(tmp_path, doc, message):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialsError, match=message):
        HttpCredentials(path)


def test_executor_tokens_are_bound_to_their_executor_and_survive_an_agent_restart(tmp_path):
    tokens = ExecutorTokens.for_work_dir(tmp_path / "executor.key")
    token = tokens.mint("fw-1", "exec-1")
    assert tokens.valid("fw-1", "exec-1", token)
    assert not tokens.valid("fw-1", "exec-2", token)
    assert not tokens.valid("fw-11", "exec-1", tokens.mint("fw-1", "1/exec-1"))
    again = ExecutorTokens.for_work_dir(tmp_path / "executor.key")
    assert again.valid("fw-1", "exec-1", token)
    (tmp_path / "bad.key").write_bytes(b"short")
    with pytest.raises(CredentialsError, match="damaged"):
        ExecutorTokens.for_work_dir(tmp_path / "bad.key")
