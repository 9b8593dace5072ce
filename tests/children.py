"""A ``python -m feeder COMMAND`` child process of a test: started in its config's folder, its output in a log
file there, stopped or killed at the end whatever happened."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tests.builders import CHILD_ENV

STOP_TIMEOUT = 10.0


class Child:
    """``python -m feeder COMMAND --config CONFIG ARGS…``, its stdout and stderr in NAME.log beside the config."""

    def __init__(self, config: Path, command: str, *args: str, name: str, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "feeder", command, "--config", str(config), *args],
            cwd=config.parent,
            env={**CHILD_ENV, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def lines(self) -> list[str]:
        return self.log().splitlines()

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL (when it still runs), and wait for it."""
        if self.alive():
            self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._log.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, and its exit code (TimeoutExpired if it does not exit in time)."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def terminate(self, timeout: float = STOP_TIMEOUT) -> None:
        """Teardown: SIGTERM, then SIGKILL if it hangs. Never fails: the tests check stopping themselves."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._log.close()
