"""compose.yaml and the Dockerfile: valid by the Compose specification, and the topology the issue asks for.

Static checks (no Docker needed): the file is validated with check-jsonschema's vendored Compose
spec schema, then read with PyYAML (anchors and merge keys resolved) and checked fact by fact.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

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


def test_locust_runs_only_under_the_load_profile(services: dict[str, dict[str, Any]]) -> None:
    locust = services["locust"]
    assert locust.get("profiles") == ["load"], locust.get("profiles")
    assert command_of(locust)[0] == "locust"
    assert depends_on(locust).get("api") == "service_healthy"
    for name, service in services.items():
        if name != "locust":
            assert "load" not in service.get("profiles", []), name


def test_locust_is_given_what_the_locustfile_reads(services: dict[str, dict[str, Any]]) -> None:
    """loadtests/locustfile.py refuses to start without --mock-url (env LOCUST_MOCK_URL) and
    --jwt-secret (env LOCUST_JWT_SECRET), and counts a callback that does not redirect to
    --frontend-url (env LOCUST_FRONTEND_URL, default http://frontend.test) as a failure."""
    locust = services["locust"]
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


def test_the_locustfile_locust_is_given_is_in_its_image(services: dict[str, dict[str, Any]]) -> None:
    locust = services["locust"]
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
