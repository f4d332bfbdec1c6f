"""A finished run's result (`RunResult`) and its status in AgentOS's terms: what a live run's handle
holds once it ended, and what the transports answer with (no I/O, no run service imports)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat.agents.team import CIRKELLINE_TEAM_ID
from metrics.models import RunStatus


@dataclass
class RunResult:
    run_id: str
    session_id: str
    status: str  # metrics.models.RunStatus value
    error_type: str = ""
    message: str = ""
    retry_after: float | None = None
    output: Any = None  # agno's TeamRunOutput, when agno produced one
    terminal: Any = None
    content: str = ""
    # The run ended but its rows could not be written (the database is unavailable) ...
    storage_failed: bool = False
    # ... or were refused by the database (not retried; only the usage row was written).
    storage_refused: bool = False

    def output_dict(self) -> dict:
        """The run as AgentOS returns it for stream=false (TeamRunOutput.to_dict())."""
        if self.output is not None:
            data = self.output.to_dict()
        else:
            data = {"run_id": self.run_id, "session_id": self.session_id, "team_id": CIRKELLINE_TEAM_ID,
                    "content": self.content}
        data["status"] = AGNO_STATUS[self.status]
        if self.error_type:
            data["error_type"] = self.error_type
            data["content"] = self.message
        return data


# The run's status as AgentOS names it (stored run rows, stream=false responses).
AGNO_STATUS = {
    RunStatus.COMPLETED: "COMPLETED",
    RunStatus.CANCELLED: "CANCELLED",
    RunStatus.ERROR: "ERROR",
    RunStatus.RATE_LIMITED: "ERROR",
    RunStatus.TIMED_OUT: "ERROR",
    # Waiting for its user (chat.runs.pause); expired: nobody answered in time.
    RunStatus.PAUSED: "PAUSED",
    RunStatus.EXPIRED: "CANCELLED",
}
