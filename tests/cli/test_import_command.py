"""``bastion import`` as a real process: stdout, ``-o`` without overwriting, ``--force``, exits."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from bastion.config import ServerConfig, load_config
from tests.support import BASTION

DESKTOP = {
    "mcpServers": {
        "github": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"},
        },
        "legacy": {"type": "sse", "url": "https://example.com/sse"},
    }
}
WARNINGS = [
    "servers.github: env.GITHUB_PERSONAL_ACCESS_TOKEN written inline as they were: "
    "keep this file private, or use ${NAME}",
    'mcpServers.legacy: skipped: "sse", the deprecated HTTP+SSE transport, is not supported',
]


def bastion(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def sample(tmp_path: Path) -> Path:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(DESKTOP))
    return path


def test_prints_yaml_and_warnings(tmp_path: Path) -> None:
    done = bastion("import", sample(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "# Bastion configuration written by `bastion import`.\n"
        "# Read these notes, then delete them:\n"
        f"#   - {WARNINGS[0]}\n"
        f"#   - {WARNINGS[1]}\n"
        "servers:\n"
        "  github:\n"
        "    command: npx\n"
        "    args:\n"
        "    - -y\n"
        "    - '@modelcontextprotocol/server-github'\n"
        "    env:\n"
        "      GITHUB_PERSONAL_ACCESS_TOKEN: ghp_literal\n"
    )
    assert done.stderr.splitlines() == [f"bastion import: {w}" for w in WARNINGS]


def test_writes_a_private_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    source, out = sample(tmp_path), tmp_path / "bastion.yaml"
    done = bastion("import", source, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == f"bastion import: wrote {out} (1 server(s))"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it may hold secrets
    config = load_config(out, {})
    assert config.servers == {
        "github": ServerConfig(
            command="npx",
            args=["-y", "@modelcontextprotocol/server-github"],
            env={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"},
        )
    }

    out.write_text("# mine\n")
    again = bastion("import", source, "--output", out, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1] == (
        f"bastion import: {out} exists; use --force to replace it"
    )
    assert out.read_text() == "# mine\n"

    forced = bastion("import", source, "-o", out, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert load_config(out, {}) == config


def test_vscode_file_round_trips_through_the_command(tmp_path: Path) -> None:
    source = tmp_path / "mcp.json"
    source.write_text(
        "{\n"
        "  // VS Code writes comments and trailing commas\n"
        '  "inputs": [{"type": "promptString", "id": "token", "password": true}],\n'
        '  "servers": {"gh": {"type": "http", "url": "https://h/mcp",\n'
        '                     "headers": {"Authorization": "Bearer ${input:token}"},},},\n'
        "}\n"
    )
    out = tmp_path / "bastion.yaml"
    done = bastion("import", source, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = load_config(out, {"token": "t"})
    assert config.servers["gh"] == ServerConfig(
        url="https://h/mcp", headers={"Authorization": "Bearer t"}
    )


def test_errors_exit_78_with_the_file_named(tmp_path: Path) -> None:
    missing = bastion("import", "missing.json", cwd=tmp_path)
    assert (missing.returncode, missing.stdout) == (78, "")
    assert missing.stderr == "bastion: missing.json: cannot read: No such file or directory\n"

    (tmp_path / "broken.json").write_text('{"mcpServers": {"a" 1}}')
    broken = bastion("import", "broken.json", cwd=tmp_path)
    assert broken.returncode == 78
    assert broken.stderr == "bastion: broken.json:1:21: Expecting ':' delimiter\n"

    (tmp_path / "settings.json").write_text('{"theme": "dark"}')
    other = bastion("import", "settings.json", "-o", "out.yaml", cwd=tmp_path)
    assert other.returncode == 78
    assert other.stderr.startswith("bastion: settings.json: no MCP servers: expected")
    assert not (tmp_path / "out.yaml").exists()


def test_usage_errors(tmp_path: Path) -> None:
    done = bastion("import", cwd=tmp_path)
    assert done.returncode == 2
    assert "the following arguments are required: file" in done.stderr


def test_force_leaves_a_private_file_even_over_a_readable_one(tmp_path: Path) -> None:
    # The imported YAML can hold inline secrets (ghp_literal): replacing a 0644 file must not
    # keep its mode, and a symlink at the target is replaced, not written through.
    source, out = sample(tmp_path), tmp_path / "bastion.yaml"
    out.write_text("# old\n")
    out.chmod(0o644)
    done = bastion("import", source, "-o", out, "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "ghp_literal" in out.read_text()

    target, link = tmp_path / "elsewhere.yaml", tmp_path / "link.yaml"
    target.write_text("# someone else's file\n")
    target.chmod(0o644)
    link.symlink_to(target)
    linked = bastion("import", source, "-o", link, "--force", cwd=tmp_path)
    assert linked.returncode == 0, linked.stderr
    assert target.read_text() == "# someone else's file\n"
    assert not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    assert "ghp_literal" in link.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bastion.yaml",
        "claude_desktop_config.json",
        "elsewhere.yaml",
        "link.yaml",
    ]


def test_force_failure_leaves_no_temporary_file(tmp_path: Path) -> None:
    source, out = sample(tmp_path), tmp_path / "taken"
    out.mkdir()
    done = bastion("import", source, "-o", out, "--force", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(f"bastion import: cannot write {out}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claude_desktop_config.json", "taken"]
    assert list(out.iterdir()) == []
