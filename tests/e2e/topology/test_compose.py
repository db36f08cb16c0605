"""compose.yaml and the Dockerfile: valid by the Compose specification, and the topology the issue asks for.

Static checks (no Docker needed): the file is validated with check-jsonschema's vendored Compose
spec schema, then read with PyYAML (anchors and merge keys resolved) and checked fact by fact.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from litestar.testing import AsyncTestClient
from sqlalchemy import make_url

from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from mock_toss.config import MockConfig
from tests.support.servers import REPO_ROOT

COMPOSE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
ALLOWED_CONDITIONS = {"service_healthy", "service_completed_successfully"}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def command_of(service: dict[str, Any]) -> list[str]:
    raw = service.get("command", [])
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def with_defaults(value: str) -> str:
    """Interpolate `${VAR:-default}` / `${VAR-default}` to the default; `${VAR:?err}` stays as is."""

    def replace(match: re.Match[str]) -> str:
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        return match.group(0)

    return _VARIABLE.sub(replace, value)


def same_setting(value: str | None, wanted: str) -> bool:
    """Whether two compose values mean the same: the same variables (`${JWT_SECRET:?…}` and
    `${JWT_SECRET}` are one setting) around the same literal text, or the same value once
    `${VAR:-default}` defaults are applied."""
    if value is None:
        return False

    def shape(text: str) -> str:
        return _VARIABLE.sub(lambda m: "${" + m.group("name") + "}", text).rstrip("/")

    if _VARIABLE.search(wanted) and shape(value) == shape(wanted):
        return True
    return with_defaults(value).rstrip("/") == with_defaults(wanted).rstrip("/")


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


def test_mysql_is_8x_with_a_healthcheck_and_utf8mb4(services: dict[str, dict[str, Any]]) -> None:
    mysql = services["mysql"]
    assert re.fullmatch(r"mysql:8(\.\d+)*(-[\w.]+)?", mysql["image"]), mysql["image"]
    assert mysql.get("healthcheck", {}).get("test"), mysql
    settings = " ".join(command_of(mysql)) + " " + " ".join(environment_of(mysql).values())
    assert "--character-set-server=utf8mb4" in settings, settings
    collation = re.search(r"--collation-server=(\S+)", settings)
    assert collation and collation.group(1).startswith("utf8mb4"), settings


def test_redis_is_7x_with_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-[\w.]+)?", redis["image"]), redis["image"]
    assert redis.get("healthcheck", {}).get("test"), redis


def test_migrate_api_and_worker_run_the_payments_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command_of(services["migrate"])[:2] == ["payments", "migrate"]
    assert command_of(services["api"])[:2] == ["payments", "serve"]
    assert command_of(services["worker"])[:2] == ["payments", "worker"]
    assert services["migrate"].get("restart", "no") == "no"
    api = command_of(services["api"])
    assert api[api.index("--host") + 1] == "0.0.0.0", api  # reachable from the other containers


def test_at_least_two_workers_and_the_api_is_healthchecked(services: dict[str, dict[str, Any]]) -> None:
    assert int(services["worker"].get("deploy", {}).get("replicas", 1)) >= 2, services["worker"]
    assert services["api"].get("healthcheck", {}).get("test"), services["api"]


def test_startup_order_waits_for_health_and_migrations(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["migrate"]).get("mysql") == "service_healthy"
    for name in ("api", "worker"):
        needs = depends_on(services[name])
        assert needs.get("migrate") == "service_completed_successfully", (name, needs)
        assert needs.get("redis") == "service_healthy", (name, needs)
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert condition in ALLOWED_CONDITIONS, (name, target, condition)
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), f"{name} waits on {target}"


def test_services_talk_to_each_other_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    for name in ("migrate", "api", "worker"):
        env = {key: with_defaults(value) for key, value in environment_of(services[name]).items()}
        assert "@mysql:3306/" in env["DATABASE_URL"] and env["DATABASE_URL"].startswith("mysql+asyncmy://")
        assert env["REDIS_URL"].startswith("redis://redis:6379"), env
        assert env["TOSS_API_URL"].rstrip("/") == "http://mock-toss:8090", env
        assert env["ENVIRONMENT"] == "production", env


def test_the_mock_sends_its_webhooks_to_the_api(services: dict[str, dict[str, Any]]) -> None:
    mock = services["mock-toss"]
    command = command_of(mock)
    hooks = [command[i + 1] for i, part in enumerate(command) if part == "--webhook-url"]
    hooks += [
        url.strip()
        for url in with_defaults(environment_of(mock).get("MOCK_TOSS_WEBHOOK_URL", "")).split(",")
        if url.strip()
    ]
    assert "http://api:8000/webhooks/payments/toss" in hooks, command
    assert command[command.index("--host") + 1] == "0.0.0.0", command
    assert mock.get("healthcheck", {}).get("test"), mock


def test_the_mock_accepts_the_keys_the_services_use(services: dict[str, dict[str, Any]]) -> None:
    """Production mode refuses the docs' test secret key, so the services run with TOSS_SECRET_KEY
    from the environment: the mock must be told the same keys (MOCK_TOSS_SECRET_KEY/--secret-key,
    MOCK_TOSS_CLIENT_KEY/--client-key), or every confirm is 401 UNAUTHORIZED_KEY and every payment
    window refuses the client key the API hands out."""
    api_env = environment_of(services["api"])
    mock = services["mock-toss"]
    mock_env = environment_of(mock)
    command = command_of(mock)

    def configured(env_name: str, flag: str) -> str | None:
        if flag in command:
            return command[command.index(flag) + 1]
        return mock_env.get(env_name)

    assert same_setting(configured("MOCK_TOSS_SECRET_KEY", "--secret-key"), api_env["TOSS_SECRET_KEY"]), (
        f"api uses TOSS_SECRET_KEY={api_env['TOSS_SECRET_KEY']!r}; mock-toss is given "
        f"{configured('MOCK_TOSS_SECRET_KEY', '--secret-key')!r} (so it only accepts the docs' default key)"
    )
    assert same_setting(configured("MOCK_TOSS_CLIENT_KEY", "--client-key"), api_env["TOSS_CLIENT_KEY"]), (
        f"api hands out TOSS_CLIENT_KEY={api_env['TOSS_CLIENT_KEY']!r}; mock-toss is given "
        f"{configured('MOCK_TOSS_CLIENT_KEY', '--client-key')!r}"
    )


def test_production_secrets_are_required_not_defaulted(services: dict[str, dict[str, Any]]) -> None:
    for name in ("migrate", "api", "worker"):
        env = environment_of(services[name])
        for key in ("JWT_SECRET", "TOSS_SECRET_KEY"):
            assert re.fullmatch(r"\$\{" + key + r":\?[^}]*\}", env[key]), (name, key, env[key])


LOCUST_SERVICES = ("locust-master", "locust-worker")


def test_locust_runs_only_under_the_load_profile(services: dict[str, dict[str, Any]]) -> None:
    for name in LOCUST_SERVICES:
        locust = services[name]
        assert locust.get("profiles") == ["load"], (name, locust.get("profiles"))
        assert command_of(locust)[0] == "locust", name
        assert depends_on(locust).get("api") == "service_healthy", name
    for name, service in services.items():
        if name not in LOCUST_SERVICES:
            assert "load" not in service.get("profiles", []), name


def test_locust_runs_distributed_a_master_and_scalable_workers(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose --profile load up --scale locust-worker=N`: one master (the web UI on 8089),
    N workers that connect to it by its service name; only the master publishes a port and every
    worker runs the same image and locustfile as the master."""
    master, worker = services["locust-master"], services["locust-worker"]
    master_command, worker_command = command_of(master), command_of(worker)
    assert "--master" in master_command and "--worker" not in master_command, master_command
    assert "--worker" in worker_command and "--master" not in worker_command, worker_command
    assert worker_command[worker_command.index("--master-host") + 1] == "locust-master", worker_command
    if "--master-port" in worker_command or "--master-bind-port" in master_command:
        bind = master_command[master_command.index("--master-bind-port") + 1]
        assert worker_command[worker_command.index("--master-port") + 1] == bind
    assert depends_on(worker).get("locust-master") == "service_healthy"
    assert any(str(port).endswith("8089:8089") for port in master.get("ports", [])), master.get("ports")
    # scaled replicas must not fight over a host port or a fixed container name
    assert not worker.get("ports") and "container_name" not in worker, worker
    assert worker.get("build") == master.get("build") and worker.get("image") == master.get("image")

    def locustfile(command: list[str]) -> str:
        flag = "-f" if "-f" in command else "--locustfile"
        return command[command.index(flag) + 1]

    assert locustfile(worker_command) == locustfile(master_command)


@pytest.mark.parametrize("name", LOCUST_SERVICES)
def test_locust_is_given_what_the_locustfile_reads(services: dict[str, dict[str, Any]], name: str) -> None:
    """loadtests/locustfile.py refuses to start without --mock-url (env LOCUST_MOCK_URL) and
    --jwt-secret (env LOCUST_JWT_SECRET), and counts a callback that does not redirect to
    --frontend-url (env LOCUST_FRONTEND_URL, default http://frontend.test) as a failure."""
    locust = services[name]
    command = command_of(locust)
    env = environment_of(locust)
    api_env = environment_of(services["api"])
    locustfile = (REPO_ROOT / "loadtests" / "locustfile.py").read_text()

    def given(flag: str, env_name: str, default: str | None = None) -> str | None:
        assert f'"{flag}"' in locustfile and f'env_var="{env_name}"' in locustfile, (flag, env_name)
        if flag in command:
            return command[command.index(flag) + 1]
        return env.get(env_name, default)

    expected = {
        ("--mock-url", "LOCUST_MOCK_URL"): "http://mock-toss:8090",
        ("--jwt-secret", "LOCUST_JWT_SECRET"): api_env["JWT_SECRET"],
        ("--frontend-url", "LOCUST_FRONTEND_URL"): api_env["FRONTEND_BASE_URL"],
    }
    defaults = {"--frontend-url": "http://frontend.test"}
    wrong = []
    for (flag, env_name), wanted in expected.items():
        value = given(flag, env_name, defaults.get(flag))
        if not same_setting(value, wanted):
            wrong.append(f"{flag}/{env_name} is {value!r}, should be {wanted!r}")
    assert not wrong, f"locust's environment has {sorted(env)}: " + "; ".join(wrong)


# --- the Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), FROM included


def dockerfile_stages(text: str | None = None) -> list[Stage]:
    """The Dockerfile's stages in order, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text() if text is None else text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction, arguments = instruction.upper(), arguments.strip()
        if instruction == "FROM":
            words = arguments.split()
            name = words[words.index("AS") + 1] if "AS" in words else str(len(stages))
            stages.append(Stage(name=name, base=words[0], instructions=[]))
        if stages:
            stages[-1].instructions.append((instruction, arguments))
    return stages


def target_of(service: dict[str, Any], stages: list[Stage]) -> Stage:
    """The stage compose builds for a service: `build.target`, or the last stage."""
    build = service.get("build")
    wanted = build.get("target") if isinstance(build, dict) else None
    if wanted is None:
        return stages[-1]
    found = [stage for stage in stages if stage.name == wanted]
    assert found, f"build target {wanted!r} is not a stage of the Dockerfile"
    return found[0]


def test_every_stage_is_slim() -> None:
    stages = dockerfile_stages()
    assert stages
    for stage in stages:
        image = stage.base
        if image in {other.name for other in stages}:
            continue  # built on an earlier stage of this file
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", image), image


def test_every_image_compose_runs_is_non_root(services: dict[str, dict[str, Any]]) -> None:
    stages = dockerfile_stages()
    built = {name: target_of(service, stages) for name, service in services.items() if "build" in service}
    assert {"migrate", "api", "worker", "mock-toss"} <= set(built), sorted(built)
    for name, stage in built.items():
        users = [arguments for instruction, arguments in stage.instructions if instruction == "USER"]
        assert users, f"{name}: stage {stage.name} never switches to a non-root USER"
        assert users[-1].split(":")[0] not in {"root", "0"}, (name, users[-1])
    runtime = target_of(services["api"], stages)
    cmd = [arguments for instruction, arguments in runtime.instructions if instruction == "CMD"]
    assert cmd and "payments" in cmd[-1] and "serve" in cmd[-1], cmd


def image_provides(path: str, stage_name: str | None = None, dockerfile: str | None = None) -> bool:
    """Whether a COPY of the stage (default: the last) puts the repository file `path` in the image."""
    stages = dockerfile_stages(dockerfile)
    workdirs: dict[str, PurePosixPath] = {}
    for stage in stages:
        workdir = PurePosixPath("/")
        for instruction, arguments in stage.instructions:
            if instruction == "WORKDIR":
                workdir = workdir / arguments
        workdirs[stage.name] = workdir
    chosen = stages[-1] if stage_name is None else next(s for s in stages if s.name == stage_name)
    workdir = PurePosixPath("/")
    target = PurePosixPath(path)
    for instruction, arguments in chosen.instructions:
        if instruction == "WORKDIR":
            workdir = workdir / arguments
        if instruction not in ("COPY", "ADD"):
            continue
        parts = arguments.split()
        from_stage = next((p.split("=", 1)[1] for p in parts if p.startswith("--from=")), None)
        sources, dest = [p for p in parts[:-1] if not p.startswith("--")], parts[-1]
        destination = workdir / dest
        if target != destination and destination not in target.parents:
            continue
        for source in sources:
            in_repo = source
            if from_stage is not None:
                base = workdirs.get(from_stage, PurePosixPath("/"))
                made = PurePosixPath(source)
                if not made.is_relative_to(base):
                    continue  # made in that stage, not copied from the repository
                in_repo = str(made.relative_to(base))
            origin = REPO_ROOT / in_repo
            rest = target.relative_to(destination)
            candidate = origin / rest if origin.is_dir() else origin
            if candidate.is_file():
                return True
    return False


@pytest.mark.parametrize("name", LOCUST_SERVICES)
def test_the_locustfile_locust_is_given_is_in_its_image(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    locust = services[name]
    command = command_of(locust)
    flag = "-f" if "-f" in command else "--locustfile"
    locustfile = command[command.index(flag) + 1]
    stage = target_of(locust, dockerfile_stages())
    assert image_provides(locustfile, stage.name), (
        f"locust runs -f {locustfile}, but its image (stage {stage.name}) copies no such file"
    )
    installs = " ".join(arguments for instruction, arguments in stage.instructions if instruction == "RUN")
    assert "locust" in installs, f"stage {stage.name} does not install locust"


def test_the_copy_detector_itself_sees_a_copied_file() -> None:
    """Guards the check above: a COPY of loadtests (from the context or from the build stage)
    does put the locustfile in the image; a file missing from the repository never is."""
    base = "FROM python:3.11-slim AS build\nWORKDIR /src\nCOPY loadtests ./loadtests\nFROM python:3.11-slim\n"
    path = "/home/payments/loadtests/locustfile.py"
    from_context = base + "COPY loadtests /home/payments/loadtests\n"
    from_build = base + "WORKDIR /home/payments\nCOPY --from=build /src/loadtests ./loadtests\n"
    nothing = base + "COPY --from=build /wheels /wheels\n"
    assert image_provides(path, dockerfile=from_context)
    assert image_provides(path, dockerfile=from_build)
    assert not image_provides(path, dockerfile=nothing)
    assert not image_provides("/home/payments/loadtests/missing.py", dockerfile=from_context)


# --- `cp .env.example .env && docker compose up`: what it starts, and the click-through -----------
# No Docker engine here: compose.yaml is interpolated the way compose does it, with .env.example as
# the `.env` file, and each fact a click-through needs is checked on the result (and the API's
# environment is loaded by the app itself, in-process).

ENV_EXAMPLE = REPO_ROOT / ".env.example"
STACK = {"mysql", "redis", "migrate", "api", "worker", "mock-toss"}
ON_THE_HOST = {"localhost", "127.0.0.1", "::1"}


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """A compose `.env` file: `NAME=value` lines, `#` comment lines; no quoting needed or used."""
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, value = line.partition("=")
        assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}:{number}: {line!r}"
        assert " #" not in value and value == value.strip(), f"{path.name}:{number}: comment or blanks"
        assert not value.startswith(("'", '"')), f"{path.name}:{number}: keep values unquoted"
        assert name not in found, f"{path.name}:{number}: {name} twice"
        found[name] = value
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: `${V}`, `${V:-d}`/`${V-d}` (default when unset, or also when empty
    with the colon), `${V:?err}`/`${V?err}` (refuse to start)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        given = env.get(name)
        missing = given is None or (given == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and missing:
            return str(arg)
        if op in (":?", "?") and missing:
            raise AssertionError(f"compose refuses to start: {name} is unset ({arg})")
        return given or ""

    return _VARIABLE.sub(replace, value)


def resolved_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    return {key: interpolate(value, env) for key, value in environment_of(service).items()}


def published(service: dict[str, Any], env: dict[str, str]) -> dict[int, int]:
    """{container port: host port} of a service's `ports` (short or long syntax)."""
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(interpolate(str(entry.get("published", entry["target"])), env))
            continue
        parts = interpolate(str(entry), env).split("/")[0].split(":")
        assert len(parts) >= 2, f"{entry!r} publishes on a random host port"
        ports[int(parts[-1])] = int(parts[-2])
    return ports


def listens_on(service: dict[str, Any]) -> int:
    command = command_of(service)
    return int(command[command.index("--port") + 1])


def on_the_host(url: str, service: dict[str, Any], env: dict[str, str]) -> bool:
    """Whether a browser on the Docker host reaches `service` at `url`."""
    parts = urlsplit(url)
    host_port = published(service, env).get(listens_on(service))
    return parts.scheme in ("http", "https") and parts.hostname in ON_THE_HOST and parts.port == host_port


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return env_file()


def test_the_stack_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= STACK, sorted(STACK - set(services))


def test_env_example_sets_every_variable_compose_reads(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    """`cp .env.example .env && docker compose up` must not stop at a `${VAR:?…}`, and every
    other variable compose reads is there to be edited; nothing in it is read by no one."""
    text = COMPOSE.read_text()
    read = {m.group("name") for m in _VARIABLE.finditer(text)}
    required = {m.group("name") for m in _VARIABLE.finditer(text) if m.group("op") in (":?", "?")}
    assert required, "compose.yaml requires no variable?"
    assert not required - {k for k, v in example_env.items() if v}, "required but empty or missing"
    assert read == set(example_env), (
        f"read by compose, missing from .env.example: {sorted(read - set(example_env))}; "
        f"in .env.example, read by no one: {sorted(set(example_env) - read)}"
    )
    for name, service in compose["services"].items():  # nothing in compose.yaml is left unset
        for key, value in resolved_environment(service, example_env).items():
            assert "${" not in value, (name, key, value)


def test_the_mock_and_the_api_publish_their_ports(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    for name in ("mock-toss", "api"):
        service = services[name]
        assert listens_on(service) in published(service, example_env), (name, service.get("ports"))


@pytest.mark.parametrize("source", [".env.example", "compose defaults"])
def test_what_the_browser_is_handed_is_reachable_from_the_host(
    services: dict[str, dict[str, Any]], example_env: dict[str, str], source: str
) -> None:
    """The browser opens the mock's window and SDK (TOSS_BROWSER_URL, TOSS_CHECKOUT_URL), comes back
    to the API (PUBLIC_BASE_URL) and is sent on to the frontend (FRONTEND_BASE_URL): published
    ports on the host, never a compose service name. Server to server stays on service names."""
    env = dict(example_env)
    if source == "compose defaults":  # only what compose requires: every default of compose.yaml
        env = {k: v for k, v in env.items() if k in {"JWT_SECRET", "TOSS_SECRET_KEY", "TOSS_CLIENT_KEY"}}
    mock, api = services["mock-toss"], services["api"]
    for name in ("api", "worker", "migrate"):
        # As the app reads them, its own defaults included (an unset TOSS_BROWSER_URL is TOSS_API_URL).
        settings = load_settings(resolved_environment(services[name], env))
        checkout = settings.toss.checkout_url  # app/bootstrap.py: outside production, the mock's window
        if checkout is None and not settings.is_production:
            checkout = f"{settings.toss.browser_base_url}/checkout"
        handed = {
            "PUBLIC_BASE_URL": (settings.http.public_base_url, api),
            "FRONTEND_BASE_URL": (settings.http.frontend_base_url, api),
            "TOSS_BROWSER_URL": (settings.toss.browser_base_url, mock),
            "TOSS_CHECKOUT_URL": (checkout, mock),
        }
        wrong = {
            key: url for key, (url, service) in handed.items() if url and not on_the_host(url, service, env)
        }
        assert not wrong, f"{name} hands the browser addresses it cannot reach: {wrong}"
        assert urlsplit(settings.toss.api_url).hostname == "mock-toss", settings.toss.api_url
        assert urlsplit(settings.toss.api_url).port == listens_on(mock)


def test_env_example_runs_the_reference_checkout(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    """The callbacks send the browser to FRONTEND_BASE_URL; with .env.example that is the API's
    own /demo, which is served only outside production, so .env.example must not be production."""
    settings = load_settings(resolved_environment(services["api"], example_env))
    assert not settings.is_production, "the reference checkout (/demo) is not served in production"
    assert urlsplit(settings.http.frontend_base_url).path.rstrip("/") == "/demo"
    assert urlsplit(settings.http.frontend_base_url).port == urlsplit(settings.http.public_base_url).port
    for name in ("worker", "migrate"):
        load_settings(resolved_environment(services[name], example_env))  # valid for every role
    MockConfig(
        secret_key=example_env["TOSS_SECRET_KEY"], client_key=example_env["TOSS_CLIENT_KEY"]
    )  # the mock accepts the pair (test_ keys)


def test_env_example_secrets_are_refused_in_production(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    """Switching .env.example to ENVIRONMENT=production without replacing its development secrets
    must not start: `payments serve` and `payments worker` refuse insecure defaults."""
    settings = load_settings(
        resolved_environment(services["api"], {**example_env, "ENVIRONMENT": "production"})
    )
    problems = " ".join(settings.insecure_defaults())
    assert "JWT_SECRET" in problems and "TOSS_SECRET_KEY" in problems, problems


def test_mysql_password_goes_into_the_url_unharmed(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    """compose.yaml puts MYSQL_PASSWORD into DATABASE_URL as it is: the example's must need no
    URL-encoding, and be the password MySQL creates the user with."""
    password = example_env["MYSQL_PASSWORD"]
    assert re.fullmatch(r"[A-Za-z0-9_.~-]+", password), password
    url = make_url(resolved_environment(services["api"], example_env)["DATABASE_URL"])
    mysql_env = resolved_environment(services["mysql"], example_env)
    assert (url.username, url.password, url.host, url.database) == (
        mysql_env["MYSQL_USER"],
        mysql_env["MYSQL_PASSWORD"],
        "mysql",
        mysql_env["MYSQL_DATABASE"],
    )


def test_mysql_logins_work_with_our_dependencies(services: dict[str, dict[str, Any]]) -> None:
    """MySQL 8.4 creates its users with caching_sha2_password. Over a connection without TLS
    (ours: DATABASE_URL asks for none) its full authentication (the first login after a start)
    RSA-encrypts the password, and asyncmy does that only with the `cryptography` package: it must
    be a dependency of the project (so the image's wheels include it), and importable by asyncmy.
    tests/integration/test_database_password_auth.py plays that exchange and logs in with a password
    through our own code."""
    import asyncmy.auth

    mysql = services["mysql"]
    settings = " ".join(command_of(mysql))
    native_forced = re.search(r"mysql[-_]native[-_]password", settings)
    assert re.match(r"mysql:8", mysql["image"]) and not native_forced, "the auth path below is not MySQL 8's"
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"cryptography\b", requirement) for requirement in dependencies), dependencies
    assert asyncmy.auth._have_cryptography, "asyncmy cannot import cryptography"
    builds = [
        a for stage in dockerfile_stages() for i, a in stage.instructions if i == "RUN" and "wheel" in a
    ]
    assert builds and all("--no-deps" not in build for build in builds), builds  # dependencies built in


async def test_env_example_click_through_pages_exist(
    services: dict[str, dict[str, Any]], example_env: dict[str, str], tmp_path: Path
) -> None:
    """The API as .env.example configures it (on SQLite, without Redis: the containers' MySQL and
    Redis do not exist here) serves the shop page with the SDK from the host's mock, issues a
    transaction whose successUrl and window are on the host, and serves the pages the callbacks
    redirect to (FRONTEND_BASE_URL/payment/success and /payment/fail)."""
    environment = resolved_environment(services["api"], example_env)
    environment.pop("REDIS_URL")
    database = f"sqlite+aiosqlite:///{tmp_path / 'payments.sqlite3'}"
    await asyncio.to_thread(upgrade_database, database)
    settings = load_settings({**environment, "DATABASE_URL": database})
    frontend = urlsplit(settings.http.frontend_base_url).path.rstrip("/")
    browser = example_env["TOSS_BROWSER_URL"]
    async with AsyncTestClient(app=create_app(settings)) as client:
        shop = await client.get("/demo/")
        products = (await client.get("/api/products")).json()["items"]
        token = TokenAuthority(settings.http.jwt_secret).mint(DEVELOPMENT_USER_ID)
        issued = await client.post(
            "/api/payments/issue",
            json={k: products[0][k] for k in ("productType", "productId", "amount")},
            headers={"Authorization": f"Bearer {token}"},
        )
        landing = [
            await client.get(f"{frontend}/payment/success?transactionId=T"),
            await client.get(f"{frontend}/payment/fail?transactionId=T&code=PAY_PROCESS_CANCELED"),
        ]

    assert shop.status_code == 200 and f'<script src="{browser}/v2/standard">' in shop.text
    assert issued.status_code == 201, issued.text
    answer = issued.json()
    assert answer["successUrl"] == f"{example_env['PUBLIC_BASE_URL']}/api/payments/callback/success"
    assert answer["checkoutUrl"].startswith(f"{browser}/checkout?")
    assert [page.status_code for page in landing] == [200, 200]
