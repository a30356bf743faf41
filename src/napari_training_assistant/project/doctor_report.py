"""What `nta doctor` found: `Finding`s (fixed, problem, info) collected in a `DoctorReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class Finding:
    level: Literal["fixed", "problem", "info"]
    file: str
    message: str

    def line(self) -> str:
        return f"[{self.level}] {self.file}: {self.message}"


@dataclass
class DoctorReport:
    project: str
    repaired: bool
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, file: str, message: str) -> None:
        self.findings.append(Finding(level, file, message))  # type: ignore[arg-type]

    def fix(self, file: str, done: str, todo: str) -> None:
        """A repair: `fixed` with what was done, or under --check a `problem` saying what doctor would do."""
        self.add("fixed" if self.repaired else "problem", file, done if self.repaired else todo)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    @property
    def healthy_after(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        fixed = sum(f.level == "fixed" for f in self.findings)
        if not self.findings:
            return f"{self.project}: healthy"
        verb = "fixed" if self.repaired else "fixable"
        return f"{self.project}: {fixed} {verb}, {len(self.problems)} problem(s) left"

    def as_dict(self) -> dict:
        return {
            "project": self.project,
            "repaired": self.repaired,
            "healthy": self.healthy_after,
            "findings": [asdict(f) for f in self.findings],
        }
