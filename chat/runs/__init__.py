"""The run service: one way to start, watch, cancel and finish a team run, used by every transport.

    from chat.runs import RunRequest, start_run, cancel_run
    handle = await start_run(RunRequest(user_id=..., message=...))

The names below are its public surface; the modules say how each part works: request (what a
transport asks for), service (start and cancel), handle (a live run and the registry), drive (the
run task), outcome and finalize (how a run ends and is stored), admission (limits, cross-process
cancel), accounting, tracking (the task factory), events (Cirkelline's own event, delta merging),
eventlog (a streamed run's numbered events, for every reader on any worker), resume (what a
resumed stream sends),
teams (agno teams with Cirkelline's storage). No module here imports agno: what they need from it
comes from chat.agents.runtime.
"""

from . import naming
from .handle import RunHandle, live_run, live_run_count, live_runs_of, when_idle, when_live
from .pause import ContinueRequest, continue_request_from_fields, continue_run
from .request import Attachment, RunRequest
from .result import RunResult
from .service import cancel_run, start_run

__all__ = ["Attachment", "ContinueRequest", "continue_request_from_fields", "continue_run",
            "RunHandle", "RunRequest", "RunResult", "cancel_run", "live_run", "live_run_count",
           "live_runs_of", "naming", "start_run", "when_idle", "when_live"]
