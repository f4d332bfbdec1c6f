"""The agno seam: the only package of chat (with the storage adapter) that imports agno.

The team and its specialists (team, specialists), models and their providers (providers), the
one retry layer (retry), the overrides of agno internals (stream_overrides: a retried stream and
the delegation result; shared_clients: the provider SDK clients; delegation_tool: the delegation
tool derived once; event_json: a run event's JSON), the scripted model and the offline demo
(scripted, demo), and the plain functions and names the run service and the
transports use instead of importing agno (runtime). Submodules are imported by name
(`from chat.agents.runtime import stream_team_run`); this package exports nothing itself.
"""
