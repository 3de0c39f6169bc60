"""`corral agent` flags for limits and sandbox GC: defaults, values, and bad values named."""
from __future__ import annotations

import pytest

from corral.cli import build_parser


def agent_args(*flags: str):
    return build_parser().parse_args(["agent", "--master", "127.0.0.1:5050", *flags])


def test_defaults_enforce_limits_and_keep_sandboxes_a_week() -> None:
    args = agent_args()
    assert args.enforce_limits is True and args.limit_check_interval == 0.25
    assert args.gc_delay == 7 * 24 * 3600 and args.gc_disk_headroom == 0.1
    assert args.container_disk_watch_interval == 15.0 and args.disk_watch_interval == 60.0


def test_values_are_taken() -> None:
    args = agent_args("--no-enforce-limits", "--limit-check-interval", "0.5", "--gc-delay", "1",
                      "--gc-disk-headroom", "0.25", "--container-disk-watch-interval", "2", "--disk-watch-interval", "3")
    assert args.enforce_limits is False and args.limit_check_interval == 0.5
    assert (args.gc_delay, args.gc_disk_headroom) == (1.0, 0.25)
    assert (args.container_disk_watch_interval, args.disk_watch_interval) == (2.0, 3.0)


@pytest.mark.parametrize("flag, value, named", [
    ("--gc-disk-headroom", "1.5", "invalid fraction '1.5'"),
    ("--gc-disk-headroom", "lots", "invalid fraction 'lots'"),
    ("--gc-delay", "0", "invalid duration '0'"),
    ("--limit-check-interval", "-1", "invalid duration '-1'"),
])
def test_bad_values_exit_2_naming_them(flag: str, value: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        agent_args(flag, value)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
