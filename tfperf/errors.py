"""Expected errors: each becomes one line and an exit code in the CLI, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class TfperfError(Exception):
    """An expected failure the user can fix (bad input, unreadable file). Exit code 2."""

    exit_code = 2


@dataclass
class SuiteIssue:
    """One problem in a suite file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class SuiteError(TfperfError):
    """A suite file that cannot run; carries every issue found, each with file, line and key."""

    def __init__(self, issues: list[SuiteIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))

    @classmethod
    def single(cls, file: str | Path, line: int | None, key: str | None, message: str) -> "SuiteError":
        return cls([SuiteIssue(str(file), line, key, message)])


class ResultsFileError(TfperfError):
    """A results.json that cannot be read: missing, not JSON, or a schema this version does not know."""
