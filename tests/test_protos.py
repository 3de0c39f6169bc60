"""The generated protobuf code is reproducible from protos/ and not stale."""
from __future__ import annotations

from pathlib import Path

import grpc_tools
import pytest
from google.protobuf.message import DecodeError
from grpc_tools import protoc

from corral.protos import corral_pb2
from corral.net.protocol import BODY_CLASS, PARSE, MessageType

PROTOS = Path(__file__).resolve().parents[1] / "protos"


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in sorted(PROTOS.glob("*.proto")):
        assert protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={tmp_path}", str(proto)]) == 0
    fresh = (tmp_path / "corral_pb2.py").read_text()
    installed = Path(corral_pb2.__file__).read_text()
    assert fresh == installed, "corral.protos is stale: rebuild (pip install .) after editing protos/"


def test_each_message_type_has_its_own_body_class() -> None:
    """The envelope type is derived from the body's class, so the mapping must be 1:1."""
    assert set(BODY_CLASS) == set(MessageType)
    assert len(set(BODY_CLASS.values())) == len(BODY_CLASS)


def test_every_mesos_task_state_is_in_the_schema() -> None:
    names = {"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED", "TASK_FAILED",
             "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
             "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
    assert names <= set(corral_pb2.TaskState.keys())


def test_a_body_missing_a_required_field_is_undecodable_naming_the_field() -> None:
    partial = corral_pb2.ReregisterAgent(agent=corral_pb2.AgentInfo(hostname="h"))
    partial.tasks.add(framework_id=corral_pb2.FrameworkID(value="f"), state=corral_pb2.TASK_RUNNING).task.name = "n"
    data = partial.SerializePartialToString()
    assert corral_pb2.ReregisterAgent.FromString(data).tasks[0].task.name == "n"  # (upb lets it through)
    with pytest.raises(DecodeError, match=r"ReregisterAgent is missing required field tasks\[0\]\.task\.task_id"):
        PARSE[MessageType.REREGISTER_AGENT](data)
    whole = corral_pb2.Kill(framework_id=corral_pb2.FrameworkID(value="f"), task_id=corral_pb2.TaskID(value="t"))
    assert PARSE[MessageType.KILL](whole.SerializeToString()) == whole
