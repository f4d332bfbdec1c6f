"""agno's own clients (AgentOSClient, RemoteTeam) work unchanged against a live Cirkelline."""

from __future__ import annotations

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.live import live_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def server():
    with live_server({"CIRKELLINE_MODEL": "demo"}) as base_url:
        yield base_url


@pytest.fixture(autouse=True)
def fresh_agno_http_client():
    """agno keeps one process-wide httpx client; each test has its own event loop."""
    import agno.utils.http as agno_http

    agno_http._global_async_client = None
    yield
    agno_http._global_async_client = None


async def test_agentos_client_streams_and_continues_a_session(server, alice):
    from agno.client import AgentOSClient
    from agno.run.agent import RunContentEvent, RunStartedEvent
    from agno.run.team import RunCompletedEvent, ToolCallStartedEvent
    from agno.run.team import RunStartedEvent as TeamRunStartedEvent

    client = AgentOSClient(base_url=server, timeout=30)
    headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}

    events = [e async for e in client.run_team_stream(
        team_id="cirkelline", message="Please research the history of Copenhagen", headers=headers)]
    assert isinstance(events[0], TeamRunStartedEvent)
    assert isinstance(events[-1], RunCompletedEvent)
    assert any(isinstance(e, ToolCallStartedEvent) and e.tool.tool_name == "delegate_task_to_member" for e in events)
    member_started = [e for e in events if isinstance(e, RunStartedEvent)]
    assert member_started and member_started[0].agent_id == "research-specialist"
    assert member_started[0].parent_run_id == events[0].run_id
    assert any(isinstance(e, RunContentEvent) and e.content for e in events)
    assert "offline demo" in events[-1].content.lower()
    session_id = events[-1].session_id

    follow_up = await client.run_team(team_id="cirkelline", message="What is 2+2?", session_id=session_id,
                                      headers=headers)
    assert follow_up.status == "COMPLETED" and follow_up.content == "4"
    assert follow_up.session_id == session_id
    user_messages = [m.content for m in follow_up.messages if m.role == "user"]
    assert user_messages == ["Please research the history of Copenhagen", "What is 2+2?"]

    sessions = await client.get_sessions(headers=headers)
    assert [s.session_id for s in sessions.data] == [session_id]
    detail = await client.get_session(session_id, headers=headers)
    assert detail.session_name == "Please research the history of Copenhagen"
    runs = await client.get_session_runs(session_id, headers=headers)
    assert {r.run_id for r in runs} >= {events[0].run_id, follow_up.run_id}
    assert [t.id for t in await client.list_teams(headers=headers)] == ["cirkelline"]
    config = await client.aget_config()
    assert config.teams[0].id == "cirkelline"


async def test_remote_team_runs_streaming_and_not(server, alice, bob):
    from agno.team import RemoteTeam

    remote = RemoteTeam(base_url=server, team_id="cirkelline", timeout=30)
    token = str(AccessToken.for_user(alice))

    names = [e.event async for e in remote.arun("Describe this photo of a cat", stream=True, stream_events=True,
                                                auth_token=token)]
    assert names[0] == "TeamRunStarted" and names[-1] == "TeamRunCompleted"
    assert "RunStarted" in names and "RunContent" in names

    first = await remote.arun("My favourite number is 7", stream=False, auth_token=token)
    second = await remote.arun("What is 7*6?", stream=False, auth_token=token, session_id=first.session_id)
    assert second.content == "42"
    assert [m.content for m in second.messages if m.role == "user"] == ["My favourite number is 7", "What is 7*6?"]

    # bob cannot continue alice's session through the same client
    with pytest.raises(Exception) as refused:
        await remote.arun("and mine?", stream=False, auth_token=str(AccessToken.for_user(bob)),
                          session_id=first.session_id)
    assert "404" in str(refused.value)


async def test_agnos_sse_reader_resumes_a_run_after_its_last_event_index(server, alice):
    """agno 3.1.10's AgentOSClient has no resume method; its own SSE reader, pointed at the resume
    route, gets the rest of the run as typed events with their event_index (the notices, which it
    cannot type, skipped), and the two parts make the whole answer exactly once."""
    from agno.client import AgentOSClient
    from agno.run.team import RunCompletedEvent, RunContentEvent, team_run_output_event_from_dict
    from agno.run.team import RunStartedEvent as TeamRunStartedEvent

    client = AgentOSClient(base_url=server, timeout=30)
    headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
    seen = []
    async for event in client.run_team_stream(team_id="cirkelline", message="Please research the history of Aarhus",
                                              headers=headers):
        seen.append(event)
        if isinstance(event, RunContentEvent) and event.content:
            break  # the client goes away mid-answer; the run goes on
    assert isinstance(seen[0], TeamRunStartedEvent) and seen[0].event_index == 0
    last = seen[-1].event_index
    stream = client._astream_post_form_data(
        f"/teams/cirkelline/runs/{seen[0].run_id}/resume",
        {"last_event_index": str(last), "session_id": seen[0].session_id}, headers=headers)
    rest = [event async for event in client._parse_sse_events(stream, team_run_output_event_from_dict)]
    assert rest and all(e.event_index > last for e in rest)
    assert [e.event_index for e in rest] == sorted({e.event_index for e in rest})
    assert isinstance(rest[-1], RunCompletedEvent)
    text = "".join(e.content for e in seen + rest if isinstance(e, RunContentEvent) and isinstance(e.content, str))
    assert text == rest[-1].content


async def test_agentos_client_memory_calls_work_against_ours(server, alice, bob):
    """agno's AgentOSClient memory methods, unchanged, against a live Cirkelline: always alice's own."""
    import httpx
    from agno.client import AgentOSClient

    client = AgentOSClient(base_url=server, timeout=30)
    headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
    me = str(alice.pk)

    ida = await client.create_memory("Has a sister called Ida.", user_id=me, topics=["family"], headers=headers)
    coffee = await client.create_memory("Drinks black coffee.", user_id=me, topics=["food", "mornings"],
                                        headers=headers)
    assert ida.memory_id and ida.topics == ["family"] and ida.user_id == me and ida.updated_at is not None
    page = await client.list_memories(user_id=me, headers=headers)
    assert [m.memory_id for m in page.data] == [coffee.memory_id, ida.memory_id] and page.meta.total_count == 2
    found = await client.list_memories(topics=["food", "mornings"], search_content="coffee", headers=headers)
    assert [m.memory for m in found.data] == ["Drinks black coffee."]
    assert (await client.get_memory(ida.memory_id, user_id=me, headers=headers)).memory == "Has a sister called Ida."
    changed = await client.update_memory(ida.memory_id, "Has a sister, Ida, in Aarhus.", user_id=me,
                                         topics=["family", "location"], headers=headers)
    assert changed.memory == "Has a sister, Ida, in Aarhus." and changed.topics == ["family", "location"]
    assert await client.get_memory_topics(headers=headers) == ["family", "food", "location", "mornings"]
    stats = await client.get_user_memory_stats(headers=headers)
    assert [(s.user_id, s.total_memories) for s in stats.data] == [(me, 2)]

    bobs = {"Authorization": f"Bearer {AccessToken.for_user(bob)}"}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.get_memory(ida.memory_id, headers=bobs)
    assert refused.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.list_memories(user_id=me, headers=bobs)
    assert refused.value.response.status_code == 403
    await client.delete_memories([ida.memory_id], headers=bobs)  # bob's among them: none
    assert (await client.list_memories(headers=headers)).meta.total_count == 2

    await client.delete_memory(coffee.memory_id, user_id=me, headers=headers)
    await client.delete_memories([ida.memory_id], user_id=me, headers=headers)
    assert (await client.list_memories(headers=headers)).data == []


async def test_agentos_client_continues_a_paused_run(server, alice, bob):
    """agno's own client answers a paused run: the question as agno's TeamRunPaused event with its
    requirements, answered with RunRequirement's own methods and sent back by continue_team_run
    (non-streamed) and continue_team_run_stream; another user's continue is a 404."""
    import httpx
    from agno.client import AgentOSClient
    from agno.run.requirement import RunRequirement
    from agno.run.team import RunCompletedEvent, RunContinuedEvent, RunPausedEvent

    client = AgentOSClient(base_url=server, timeout=30)
    headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}

    events = [e async for e in client.run_team_stream(
        team_id="cirkelline", message="Please ask me what to focus on", headers=headers)]
    paused = events[-1]
    assert isinstance(paused, RunPausedEvent)
    requirements = [r if isinstance(r, RunRequirement) else RunRequirement.from_dict(r) for r in paused.requirements]
    assert requirements[0].needs_user_input
    requirements[0].provide_user_input({"focus": "the old town"})

    stranger = {"Authorization": f"Bearer {AccessToken.for_user(bob)}"}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.continue_team_run(team_id="cirkelline", run_id=paused.run_id, requirements=requirements,
                                       session_id=paused.session_id, headers=stranger)
    assert refused.value.response.status_code == 404

    output = await client.continue_team_run(team_id="cirkelline", run_id=paused.run_id, requirements=requirements,
                                            session_id=paused.session_id, headers=headers)
    assert output.status == "COMPLETED" and "the old town" in output.content
    assert output.run_id == paused.run_id

    events = [e async for e in client.run_team_stream(
        team_id="cirkelline", message="Do a deep research on the harbour", session_id=paused.session_id,
        headers=headers)]
    paused = events[-1]
    assert isinstance(paused, RunPausedEvent)
    requirements = [r if isinstance(r, RunRequirement) else RunRequirement.from_dict(r) for r in paused.requirements]
    requirements[0].confirm()
    continued = [e async for e in client.continue_team_run_stream(
        team_id="cirkelline", run_id=paused.run_id, requirements=requirements, session_id=paused.session_id,
        headers=headers)]
    assert isinstance(continued[0], RunContinuedEvent) and isinstance(continued[-1], RunCompletedEvent)
    assert "deep research is done" in continued[-1].content
