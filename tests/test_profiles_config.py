"""``anyllm profiles ...`` and ``anyllm config ...``: the config file read and written as the
user sees it (stdout, stderr, exit status, the file's text and mode)."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.config import load_config
from anyllm_cli.config_write import count_comments, opening_comments
from tests.conftest import SECRET, write_config

ORIGINAL = f'''\
# My anyllm config
# (opening comment block: kept)

default_profile = "work"  # end-of-line comment: lost

# a comment above a table: lost
[profiles.work]
provider = 'openai'
model = "gpt-4.1-mini"
api_key_env = "WORK_KEY"
params = {{ temperature = 0.2, seed = 0x10, max_tokens = 1_000 }}

[profiles.keyed]
provider = "groq"
api_key = "{SECRET}"

[providers.mycorp]
backend = "openai"
api_base = "https://llm.mycorp.example/v1#frag"   # '#' inside a string is no comment
api_key_env = "MYCORP_KEY"
default_model = "mycorp-large"
'''


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_remove_round_trip_keeps_content_and_says_what_is_lost(
        run_cli: Any, config_file: Path) -> None:
    write_config(config_file, ORIGINAL)
    config_file.chmod(0o600)
    before = tomllib.loads(ORIGINAL)

    r = run_cli("profiles", "add", "fast", "--provider", "mycorp", "--model", "m1",
                "--api-base", "http://localhost:1/v1", "--param", "temperature=0.5",
                "--param", "system=Be terse.", "--param", "stop=[\"END\"]")
    assert r.code == 0, r.stderr
    assert f"anyllm: added profile fast (mycorp) in {config_file}" in r.stderr
    # 3 comments outside the opening block are dropped; the note says so and where the old file is.
    assert (f"anyllm: note: 3 comments below the opening comment block could not be kept "
            f"(tomli-w writes none); the previous file is {config_file}.bak") in r.stderr
    assert (config_file.parent / "config.toml.bak").read_text() == ORIGINAL
    assert mode(config_file) == 0o600 and mode(config_file.parent / "config.toml.bak") == 0o600

    text = config_file.read_text()
    after = tomllib.loads(text)
    assert after["profiles"]["fast"] == {
        "provider": "mycorp", "model": "m1", "api_base": "http://localhost:1/v1",
        "params": {"temperature": 0.5, "system": "Be terse.", "stop": ["END"]}}
    # Every other key and value is kept, in order.
    del after["profiles"]["fast"]
    assert after == before
    assert list(after["profiles"]) == ["work", "keyed"]

    # What is lost, exactly: comments outside the opening block, layout, literal strings,
    # inline tables and number notation. The opening block is kept verbatim.
    assert text.startswith("# My anyllm config\n# (opening comment block: kept)\n\n")
    assert count_comments(text) == 2 == count_comments(opening_comments(ORIGINAL))
    assert "lost" not in text
    assert "provider = \"openai\"\n" in text          # was 'openai'
    assert "[profiles.work.params]\n" in text         # was an inline table
    assert "seed = 16\n" in text and "max_tokens = 1000\n" in text  # were 0x10 and 1_000
    assert 'api_base = "https://llm.mycorp.example/v1#frag"\n' in text

    r = run_cli("profiles", "remove", "fast")
    assert r.code == 0, r.stderr
    assert f"anyllm: removed profile fast from {config_file}" in r.stderr
    assert "note:" not in r.stderr  # nothing more to lose
    assert tomllib.loads(config_file.read_text()) == before


def test_add_creates_the_file_private(run_cli: Any, config_file: Path) -> None:
    assert not config_file.exists()
    r = run_cli("profiles", "add", "work", "--provider", "openai", "--api-key-env", "WORK_KEY",
                "--api-key-cmd", "pass show openai", "--default")
    assert r.code == 0, r.stderr
    assert "as the default profile" in r.stderr
    assert mode(config_file) == 0o600
    assert tomllib.loads(config_file.read_text()) == {
        "default_profile": "work",
        "profiles": {"work": {"provider": "openai", "api_key_env": "WORK_KEY",
                              "api_key_cmd": "pass show openai"}}}


@pytest.mark.parametrize(("args", "message"), [
    (["--provider", "opneai"], "unknown provider 'opneai'; known: "),
    (["--provider", "openai", "--param", "temperature=hot"], "--param temperature: "),
    (["--provider", "openai", "--param", "temperature"], "--param: expected KEY=VALUE"),
])
def test_add_validates(run_cli: Any, config_file: Path, args: list[str], message: str) -> None:
    r = run_cli("profiles", "add", "work", *args)
    assert r.code == 2
    assert message in r.stderr
    assert not config_file.exists()


def test_add_refuses_a_bad_name_and_an_existing_profile(run_cli: Any, config_file: Path
                                                        ) -> None:
    r = run_cli("profiles", "add", "a:b", "--provider", "openai")
    assert r.code == 2 and "invalid profile name 'a:b'" in r.stderr
    write_config(config_file, '[profiles.work]\nprovider = "openai"\n')
    r = run_cli("profiles", "add", "work", "--provider", "groq")
    assert r.code == 2 and "profiles.work already exists (use --force" in r.stderr
    r = run_cli("profiles", "add", "work", "--provider", "groq", "--force")
    assert r.code == 0 and "replaced profile work (groq)" in r.stderr
    assert tomllib.loads(config_file.read_text())["profiles"]["work"] == {"provider": "groq"}


def test_default_and_remove_of_the_default(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, '[profiles.a]\nprovider = "openai"\n'
                              '[profiles.b]\nprovider = "groq"\n')
    r = run_cli("profiles", "default")
    assert (r.code, r.stdout) == (0, "") and "no default_profile" in r.stderr
    assert run_cli("profiles", "default", "b").code == 0
    assert run_cli("profiles", "default").stdout == "b\n"
    r = run_cli("profiles", "default", "nope")
    assert r.code == 2 and "no profile or provider named 'nope'" in r.stderr
    r = run_cli("profiles", "list", "--json")
    assert json.loads(r.stdout) == [
        {"name": "a", "provider": "openai", "model": "gpt-4.1-mini", "default": False},
        {"name": "b", "provider": "groq", "model": "llama-3.3-70b-versatile", "default": True}]
    r = run_cli("profiles", "remove", "b")
    assert r.code == 0 and "there is no default profile now" in r.stderr
    assert "default_profile" not in tomllib.loads(config_file.read_text())
    r = run_cli("profiles", "remove", "b")
    assert r.code == 2 and "no profile named 'b'" in r.stderr


def test_list_piped(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, 'default_profile = "work"\n'
                              '[profiles.work]\nprovider = "openai"\nmodel = "gpt-x"\n'
                              '[profiles.fast]\nprovider = "groq"\n')
    r = run_cli("profiles", "list")
    assert r.code == 0
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "PROVIDER", "MODEL", "DEFAULT"],
        ["work", "openai", "gpt-x", "*"],
        ["fast", "groq", "(llama-3.3-70b-versatile)"]]


def test_show_never_prints_the_key(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, f'''default_profile = "work"
[profiles.work]
provider = "openai"
api_key = "{SECRET}"
api_key_env = "WORK_KEY"
[profiles.work.params]
temperature = 0.2
''')
    config_file.chmod(0o600)
    env = {"WORK_KEY": SECRET + "-env"}
    r = run_cli("profiles", "show", "work", env=env)
    assert r.code == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert r.stdout == '''[profiles.work]
provider = "openai"
api_key_env = "WORK_KEY"
api_key = "***"

[profiles.work.params]
temperature = 0.2

# model: gpt-4.1-mini (the provider's default)
# api_base: https://api.openai.com/v1 (from the catalog)
# key, first found of: api_key in the config file, $WORK_KEY (set), $OPENAI_API_KEY (not set)
# this is the default profile
'''
    r = run_cli("profiles", "show", "work", "--json", env=env)
    assert SECRET not in r.stdout
    shown = json.loads(r.stdout)
    assert shown["api_key"] == "***"
    assert shown["effective"]["key"] == [
        {"source": "api_key", "set": True},
        {"source": "env", "name": "WORK_KEY", "set": True},
        {"source": "env", "name": "OPENAI_API_KEY", "set": False}]
    r = run_cli("profiles", "show", "nope")
    assert r.code == 2 and "no profile named 'nope'" in r.stderr and "work" in r.stderr


# --------------------------------------------------------------------------------------------
# anyllm config


def test_config_path(run_cli: Any, config_file: Path, tmp_path: Path) -> None:
    r = run_cli("config", "path")
    assert (r.code, r.stdout) == (0, f"{config_file}\n")
    assert "does not exist yet" in r.stderr
    other = tmp_path / "other.toml"
    assert run_cli("config", "path", "--config", str(other)).stdout == f"{other}\n"


def test_config_init(run_cli: Any, config_file: Path) -> None:
    r = run_cli("config", "init")
    assert r.code == 0, r.stderr
    assert mode(config_file) == 0o600
    text = config_file.read_text()
    assert text.startswith("# anyllm configuration (TOML).")
    # Every line is a comment: it loads as an empty configuration.
    assert all(line.startswith("#") for line in text.splitlines())
    assert tomllib.loads(text) == {}
    assert "#   openai" in text and "OPENAI_API_KEY" in text
    assert "# [profiles.work]" in text and "# [providers.mycorp]" in text
    # The commented examples are valid once uncommented.
    example = "\n".join(line[2:] for line in text.splitlines()
                         if re.match(r"# (\[|[a-z_]+ = )", line))
    data = tomllib.loads(example)
    assert data["default_profile"] == "work"
    assert data["profiles"]["work"]["params"] == {"temperature": 0.2, "system": "Be terse."}
    assert data["providers"]["mycorp"]["backend"] == "openai"
    cfg = load_config(write_config(config_file.with_name("example.toml"), example))
    assert cfg.profiles["work"].api_key_env == "WORK_OPENAI_KEY"
    r = run_cli("profiles", "list")
    assert r.code == 0 and r.stdout == "" and "no profiles" in r.stderr

    r = run_cli("config", "init")
    assert r.code == 2 and "already exists; use --force" in r.stderr
    config_file.write_text("# mine\n")
    config_file.chmod(0o644)
    assert run_cli("config", "init", "--force").code == 0
    assert config_file.read_text() == text and mode(config_file) == 0o600


def test_starter_comments_survive_profile_writes(run_cli: Any, config_file: Path) -> None:
    assert run_cli("config", "init").code == 0
    starter = config_file.read_text()
    r = run_cli("profiles", "add", "work", "--provider", "openai")
    assert r.code == 0 and "note:" not in r.stderr
    text = config_file.read_text()
    assert text.startswith(starter)
    assert tomllib.loads(text) == {"profiles": {"work": {"provider": "openai"}}}


def test_config_show_masks_keys_and_keeps_comments(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, f'''# keys below
[profiles.a]
provider = "openai"
api_key = "{SECRET}"   # basic string
[profiles.b]
provider = "groq"
api_key='{SECRET}'
[profiles.c]
provider = "xai"
"api_key" = """{SECRET}"""
[profiles.my]
provider = "openai"
api_key_env = "MY_api_key"
''')
    config_file.chmod(0o600)
    r = run_cli("config", "show")
    assert r.code == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert r.stdout.count('"***"') == 3
    assert 'api_key = "***"   # basic string\n' in r.stdout
    assert '"api_key" = "***"\n' in r.stdout
    assert 'api_key_env = "MY_api_key"\n' in r.stdout


def test_config_show_reports_an_invalid_file(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, '[profiles.a]\nprovider = "opneai"\n')
    r = run_cli("config", "show")
    assert r.code == 2
    assert r.stdout == '[profiles.a]\nprovider = "opneai"\n'
    assert f"{config_file}: profiles.a.provider: unknown provider 'opneai'" in r.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_warning_when_a_key_file_is_readable_by_others(run_cli: Any, config_file: Path
                                                       ) -> None:
    write_config(config_file, f'[profiles.a]\nprovider = "openai"\napi_key = "{SECRET}"\n')
    config_file.chmod(0o644)
    warning = (f"anyllm: warning: {config_file} holds an api_key and is readable by group or "
               f"others (mode 0644): run  chmod 600 {config_file}\n")
    r = run_cli("profiles", "list")
    assert r.code == 0 and r.stderr == warning
    config_file.chmod(0o640)
    assert "readable by group or others (mode 0640)" in run_cli("config", "show").stderr
    config_file.chmod(0o600)
    assert run_cli("profiles", "list").stderr == ""
    # No key in the file: its mode is the user's business.
    write_config(config_file, '[profiles.a]\nprovider = "openai"\napi_key_env = "K"\n')
    config_file.chmod(0o644)
    assert run_cli("profiles", "list").stderr == ""


def editor_script(tmp_path: Path, body: str) -> str:
    """An $EDITOR: a Python script run on the file (``path`` is sys.argv[1])."""
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\npath = sys.argv[1]\n{body}\n")
    return f"{sys.executable} {script}"


def test_config_edit_appends_a_profile(run_cli: Any, config_file: Path, tmp_path: Path
                                       ) -> None:
    editor = editor_script(tmp_path, '''
seen = open(path).read()
open(path + ".seen", "w").write(seen)
with open(path, "a") as fh:
    fh.write('\\n[profiles.added]\\nprovider = "groq"\\n')
''')
    r = run_cli("config", "edit", env={"EDITOR": editor, "VISUAL": ""})
    assert r.code == 0, r.stderr
    assert f"wrote a starter config to {config_file}" in r.stderr  # created before editing
    seen = (config_file.parent / "config.toml.seen").read_text()
    assert seen.startswith("# anyllm configuration (TOML).")
    assert mode(config_file) == 0o600
    r = run_cli("profiles", "list", "--json")
    assert json.loads(r.stdout) == [
        {"name": "added", "provider": "groq", "model": "llama-3.3-70b-versatile",
         "default": False}]
    # $VISUAL wins over $EDITOR.
    visual = editor_script(tmp_path, 'open(path, "a").write("# visual was here\\n")')
    assert run_cli("config", "edit", env={"EDITOR": "false", "VISUAL": visual}).code == 0
    assert config_file.read_text().endswith("# visual was here\n")


def test_config_edit_reports_an_invalid_result(run_cli: Any, config_file: Path, tmp_path: Path
                                               ) -> None:
    write_config(config_file, '[profiles.a]\nprovider = "openai"\n')
    editor = editor_script(tmp_path, 'open(path, "a").write("modle = \\"x\\"\\n")')
    r = run_cli("config", "edit", env={"EDITOR": editor})
    assert r.code == 2
    assert r.stderr == f"anyllm: {config_file}: profiles.a.modle: unknown key\n"
    r = run_cli("config", "edit", env={"EDITOR": "false"})
    assert r.code == 2 and "exited with status 1" in r.stderr
    r = run_cli("config", "edit", env={"EDITOR": str(tmp_path / "no-such-editor")})
    assert r.code == 2 and "cannot run the editor" in r.stderr


def test_comment_counter_skips_strings() -> None:
    text = ('a = "x # y"  # one\nb = \'#\'\nc = """\n# not a comment\n"""  # two\n'
            'd = "esc \\" # still string"\n# three\n')
    assert count_comments(text) == 3
    assert opening_comments("# a\n\n# b\nx = 1\n# c\n") == "# a\n\n# b\n"


def test_a_symlinked_config_is_written_through(run_cli: Any, config_file: Path,
                                               tmp_path: Path) -> None:
    real = write_config(tmp_path / "dotfiles" / "anyllm.toml",
                        '[profiles.a]\nprovider = "openai"\n')
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.symlink_to(real)
    assert run_cli("profiles", "add", "b", "--provider", "groq").code == 0
    assert config_file.is_symlink()
    assert list(tomllib.loads(real.read_text())["profiles"]) == ["a", "b"]
