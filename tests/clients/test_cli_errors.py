"""A user's mistake at the command line: one line ``gaemi: error: ...`` on stderr and exit
status 2, never a traceback (130 for Ctrl-C); a ``gaemi serve`` that cannot start leaves
nothing behind. Each case runs the real command line in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.live import live_server

ROOT = Path(__file__).resolve().parents[2]


def gaemi(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gaemi.clients.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("gaemi: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _keys_file(folder: Path) -> Path:
    path = folder / "keys.json"
    path.write_text(json.dumps({"keys": [
        {"apiKey": "dev-1", "secret": "s", "accountId": 1, "admin": False}]}))
    return path


@pytest.mark.parametrize(("args", "words"), [
    (["flow", "missing.jsonl"], ["missing.jsonl", "no such file"]),
    (["replay", "--ticker", "MSFT"], ["MSFT", "AMZN"]),
    (["serve", "--port", "99999"], ["--port", "99999"]),
    (["serve", "--port", "http"], ["--port"]),
    (["bot", "ant", "--keys-file", "missing.json", "--account", "1"], ["missing.json"]),
    (["bot", "ant", "--api-key", "k", "--secret", "s", "--url", "http://127.0.0.1:8765"],
     ["--url", "ws://"]),
    (["bot", "ant", "--api", "binance", "--api-key", "k", "--secret", "s", "--url",
      "ws://127.0.0.1:8766"], ["--url", "http://"]),
    (["bot", "ant", "--api", "binance", "--api-key", "k", "--secret", "s", "--url",
      "http://127.0.0.1:9"], ["cannot use the Binance API", "127.0.0.1:9"]),
    (["flow", "flow.jsonl", "--url", "http://127.0.0.1:8765"], ["--url"]),
    (["bot", "wizard"], ["wizard"]),
    (["cascade", "--scenario", "no-such-preset"], ["no-such-preset"]),
    (["nonsense"], ["nonsense"]),
])
def test_a_user_error_is_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    # Arrange: a valid flow file where one is needed
    (tmp_path / "flow.jsonl").write_text('{"ts": 1, "account": 1, "op": "admin.setIndex", '
                                         '"args": {"symbol": "NVDA-PERP", "price": 10000}}\n')

    # Act
    result = gaemi(*args, cwd=tmp_path)

    # Assert
    assert_one_line_error(result, *words)


def test_a_malformed_flow_line_is_named(tmp_path: Path) -> None:
    # Arrange: line 2 is not JSON
    flow = tmp_path / "bad.jsonl"
    flow.write_text('{"ts": 1, "account": 0, "op": "admin.setIndex", "args": {"symbol": '
                    '"NVDA-PERP", "price": 10000}}\n{"ts": 2, oops\n')

    # Act
    result = gaemi("flow", str(flow), cwd=tmp_path)

    # Assert
    assert_one_line_error(result, "bad.jsonl", "line 2")


def test_serve_on_a_port_in_use_fails_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    # Arrange: the port is taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # Act: the defaults would create gaemi-data/ (journal, keys) in the working folder
        result = gaemi("serve", "--port", str(port), cwd=tmp_path)

    # Assert
    assert_one_line_error(result, f"127.0.0.1:{port}")
    assert list(tmp_path.iterdir()) == []


def test_a_bot_for_a_market_the_server_does_not_list(tmp_path: Path) -> None:
    with live_server() as live:
        # Arrange
        keys = tmp_path / "keys.json"
        keys.write_text(json.dumps({"keys": [{"apiKey": "dev-1",
                                              "secret": live.server.keys["dev-1"].secret,
                                              "accountId": 1}]}))

        # Act
        result = gaemi("bot", "ant", "--keys-file", str(keys), "--account", "1", "--url",
                       live.url, "--symbol", "AAPL-PERP", "--duration", "1", cwd=tmp_path)

    # Assert
    assert_one_line_error(result, "AAPL-PERP", "NVDA-PERP")


def test_a_bot_with_no_server_to_talk_to(tmp_path: Path) -> None:
    # Arrange: a port nobody listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    # Act
    result = gaemi("bot", "ant", "--keys-file", str(_keys_file(tmp_path)), "--account", "1",
                   "--url", f"ws://127.0.0.1:{port}", cwd=tmp_path)

    # Assert
    assert_one_line_error(result, "cannot connect")


def test_version(tmp_path: Path) -> None:
    result = gaemi("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("gaemi ")


def test_ctrl_c_during_the_demo_exits_130_in_one_line(tmp_path: Path) -> None:
    # Arrange: the demo, started; the first line it prints says it is running
    # (in its own process group, with the baseline's worker process beside it)
    process = subprocess.Popen(
        [sys.executable, "-m", "gaemi.clients.cli", "demo", "--out", str(tmp_path / "out"),
         "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    assert first.startswith("Scenario"), first

    # Act: Ctrl-C as a terminal sends it, to the whole group
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)

    # Assert
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["gaemi: error: interrupted"], err
    assert "Traceback" not in out + err


def test_serve_on_a_damaged_journal_fails_in_one_line_and_leaves_it_alone(
        tmp_path: Path) -> None:
    # Arrange: a journal whose first record is damaged and followed by another
    journal = tmp_path / "j.gaemij"
    damaged = b"GAEMIJ1\n" + (5).to_bytes(4, "little") + bytes(4) + b"hello" + \
        (5).to_bytes(4, "little") + bytes(4)
    journal.write_bytes(damaged)

    # Act
    result = gaemi("serve", "--port", "0", "--journal", str(journal), cwd=tmp_path)

    # Assert: the offset is named, the journal is as it was, no key file was written
    assert_one_line_error(result, "byte 8")
    assert journal.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.gaemij"]
