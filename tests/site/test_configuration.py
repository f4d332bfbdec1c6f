"""Configuration: every variable the settings package reads is documented; bad values fail loudly."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat.agents import providers
from chat.agents.retry import ResilientModel

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_is_documented_in_env_example():
    settings_src = "\n".join(path.read_text() for path in (ROOT / "cirkelline_site" / "settings").glob("*.py"))
    read = set(re.findall(r"""(?:env\.\w+|positive_float|non_negative_int|environ\.get)\(\s*["']([A-Z0-9_]+)""",
                          settings_src))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read, "the pattern found nothing: it is out of date"
    assert read - documented == set()


def test_no_other_module_reads_the_environment():
    offenders = []
    # asgi.py only names the settings module for the server (Django's own pattern); it reads nothing.
    site = [path for path in (ROOT / "cirkelline_site").rglob("*.py")
            if path.parent.name != "settings" and path.name != "asgi.py"]
    for path in list((ROOT / "chat").rglob("*.py")) + list((ROOT / "metrics").rglob("*.py")) + site:
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize(
    ("value", "provider", "model_id"),
    [
        ("google:gemini-2.5-flash", "google", "gemini-2.5-flash"),
        ("openai:gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        ("openai-like:llama3.1", "openai-like", "llama3.1"),
        ("demo", "demo", ""),
    ],
)
def test_model_strings_are_parsed(settings, value, provider, model_id):
    settings.CIRKELLINE_MODEL = value
    assert providers.model_spec() == providers.ModelSpec(provider, model_id)


def test_the_default_model_follows_the_keys_present(settings):
    settings.CIRKELLINE_MODEL = ""
    assert providers.model_spec().provider == "demo"
    settings.OPENAI_API_KEY = "sk-test"
    assert providers.model_spec().provider == "openai"
    settings.GOOGLE_API_KEY = "g-test"
    assert providers.model_spec().provider == "google"


@pytest.mark.parametrize("value", ["nonsense:model", "openai:", "google"])
def test_bad_model_strings_fail_with_a_clear_message(settings, value):
    settings.CIRKELLINE_MODEL = value
    with pytest.raises(ImproperlyConfigured, match="CIRKELLINE_MODEL"):
        providers.model_spec()


def test_openai_like_needs_a_base_url(settings):
    settings.CIRKELLINE_MODEL = "openai-like:x"
    settings.CIRKELLINE_MODEL_BASE_URL = ""
    with pytest.raises(ImproperlyConfigured, match="CIRKELLINE_MODEL_BASE_URL"):
        providers.build_model("leader")


def test_real_provider_models_have_exactly_one_retry_layer(settings):
    settings.CIRKELLINE_MODEL = "openai-like:x"
    settings.CIRKELLINE_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    model = providers.build_model("leader")
    assert isinstance(model, ResilientModel)
    assert model.retries == 0 and model.max_retries == 0  # agno's and the SDK's layers are off


def test_a_bad_number_in_the_environment_stops_start_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, capture_output=True, text=True,
        env={"DJANGO_SETTINGS_MODULE": "cirkelline_site.settings", "CIRKELLINE_RUN_TIMEOUT": "-5",
             "CIRKELLINE_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "CIRKELLINE_RUN_TIMEOUT must be a positive number" in result.stderr


def test_the_env_example_as_it_stands_starts_the_server(tmp_path):
    """Guards against a documented default that breaks start-up when .env.example is copied to .env
    unchanged (an empty DATABASE_URL used to fail with KeyError: 'ENGINE')."""
    example = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value.strip()
    assert "DATABASE_URL" in example and example["DATABASE_URL"] == ""
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.DATABASES['default']['ENGINE'])"],
        cwd=ROOT, capture_output=True, text=True,
        env={**example, "DJANGO_SETTINGS_MODULE": "cirkelline_site.settings", "CIRKELLINE_VAR_DIR": str(tmp_path),
             "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cirkelline_site.db.sqlite3"  # Django's SQLite backend, writes queued in-process


def test_telemetry_is_off_for_the_team_and_every_member():
    from chat.runs.teams import team_for_run

    team = team_for_run("cirkelline")
    assert team.telemetry is False
    assert [m.telemetry for m in team.members] == [False] * 5


async def test_storage_methods_cirkelline_does_not_use_say_so():
    from chat.storage.agno_db import DjangoAgnoDb

    db = DjangoAgnoDb()
    for name in ("get_metrics", "upsert_trace", "get_knowledge_content", "create_eval_run"):
        with pytest.raises(NotImplementedError, match="stores sessions and runs only"):
            await getattr(db, name)()
