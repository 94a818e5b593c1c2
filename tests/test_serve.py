"""`questline serve` and friends: safe defaults and clear refusals."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from app.cli import cli
from app.serve import development_credentials
from app.settings import Settings
from schema import SDL_PATH

runner = CliRunner()


def test_development_on_loopback_generates_an_admin_key_and_a_demo_token() -> None:
    environ: dict[str, str] = {}
    lines: list[str] = []
    settings = development_credentials(Settings(), environ, lines.append)
    assert [key.get_secret_value() for key in settings.api_keys] == [environ["QUESTLINE_API_KEYS"]]
    assert settings.jwt_secret == SecretStr(environ["QUESTLINE_JWT_SECRET"])
    assert any("demo player token" in line for line in lines)


def test_no_credentials_are_generated_off_loopback_or_in_production() -> None:
    for settings in (Settings(host="0.0.0.0"), Settings(environment="production")):
        environ: dict[str, str] = {}
        assert development_credentials(settings, environ, print) is settings
        assert environ == {}


def test_serve_refuses_an_open_non_loopback_address() -> None:
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0"], env={"QUESTLINE_API_KEYS": ""})
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output


def test_serve_refuses_several_workers_on_the_embedded_store() -> None:
    result = runner.invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "needs the Redis store" in result.output


def test_export_schema_prints_the_committed_sdl() -> None:
    result = runner.invoke(cli, ["export-schema", "-"])
    assert result.exit_code == 0
    assert result.output == SDL_PATH.read_text()


def test_db_upgrade_creates_the_history_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    result = runner.invoke(cli, ["db", "upgrade"], env={"QUESTLINE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert (tmp_path / "history.db").exists()


def test_reload_says_when_no_server_answers() -> None:
    result = runner.invoke(cli, ["reload", "--url", "http://127.0.0.1:9", "--api-key", "k" * 20])
    assert result.exit_code == 2
    assert "cannot reach" in result.output
