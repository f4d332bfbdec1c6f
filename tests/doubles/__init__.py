"""Test doubles shared by the test suite and the load harness (bench/).

One home for the stand-ins of external systems, so that a test and a benchmark exercise the
same double: ``fake_openai`` is a loopback OpenAI chat-completions provider.
"""
