from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from busrpc.cli._runtime import CliError
from busrpc.cli._serve import build_service, load_target, parse_topics

CLI_DIR = Path(__file__).parent
# Imported by name, as `busrpc serve` does (pytest puts this directory on sys.path).
svc_fixture = importlib.import_module("svc_fixture")


@pytest.fixture(autouse=True)
def _in_cli_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CLI_DIR)  # serve imports modules from the current directory


def test_load_target_finds_a_class_in_a_module() -> None:
    assert load_target("svc_fixture:FixtureService") is svc_fixture.FixtureService


def test_load_target_follows_dotted_attributes() -> None:
    assert load_target("svc_fixture:FixtureService.greet") is svc_fixture.FixtureService.greet


@pytest.mark.parametrize("spec", ["svc_fixture", "svc_fixture:", ":FixtureService", ""])
def test_load_target_rejects_a_malformed_spec(spec: str) -> None:
    with pytest.raises(CliError, match="use module:Class") as info:
        load_target(spec)
    assert info.value.exit_code == 2


def test_load_target_reports_a_module_that_does_not_import() -> None:
    with pytest.raises(CliError, match="cannot import 'no_such_module_xyz'") as info:
        load_target("no_such_module_xyz:Svc")
    assert info.value.exit_code == 2


def test_load_target_reports_a_missing_attribute() -> None:
    with pytest.raises(CliError, match="has no 'Nope'"):
        load_target("svc_fixture:Nope")


async def test_build_service_instantiates_a_class() -> None:
    obj = await build_service(svc_fixture.FixtureService)
    assert isinstance(obj, svc_fixture.FixtureService)


async def test_build_service_calls_a_factory_function() -> None:
    assert isinstance(await build_service(svc_fixture.make_service), svc_fixture.FixtureService)


async def test_build_service_awaits_an_async_factory() -> None:
    obj = await build_service(svc_fixture.make_service_async)
    assert isinstance(obj, svc_fixture.FixtureService)


async def test_build_service_takes_an_instance_as_it_is() -> None:
    assert await build_service(svc_fixture.INSTANCE) is svc_fixture.INSTANCE


@pytest.mark.parametrize("obj", [svc_fixture.Plain, svc_fixture.NOT_A_SERVICE])
async def test_build_service_rejects_what_is_not_a_service(obj: object) -> None:
    with pytest.raises(CliError) as info:
        await build_service(obj)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("obj", [svc_fixture.NeedsArgs, svc_fixture.make_with])
async def test_build_service_refuses_what_needs_arguments(obj: object) -> None:
    with pytest.raises(CliError, match="needs arguments") as info:
        await build_service(obj)
    assert info.value.exit_code == 2


def test_parse_topics_maps_methods_to_topic_tokens() -> None:
    topics = parse_topics(svc_fixture.INSTANCE, ["region=eu", "region=us.west"])
    assert topics == {svc_fixture.FixtureService.region: [("eu",), ("us", "west")]}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("region", "use METHOD=TOPIC"),
        ("=eu", "use METHOD=TOPIC"),
        ("nope=eu", "has no method 'nope'"),
        ("greet=eu", "not declared topics=True"),
        ("region=e u", "invalid topic token"),
        ("region=_x", "invalid topic token"),
    ],
)
def test_parse_topics_rejects_bad_options(option: str, message: str) -> None:
    with pytest.raises(CliError, match=message) as info:
        parse_topics(svc_fixture.INSTANCE, [option])
    assert info.value.exit_code == 2
