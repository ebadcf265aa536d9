"""flashcode's settings: typed, layered, loaded in one place.

Layers, later ones win:
  defaults → user config (`$XDG_CONFIG_HOME/flashcode/config.toml`)
           → project `.flashcode.toml` (the repository root's only) → `FLASHCODE_*`
             environment variables → command-line flags.
The project layer is the repository's, a stranger's until the user trusts it (agent.trust):
untrusted, it may set only harmless keys and limits that tighten; the rest is ignored, and
`load_settings` reports which keys were.

A bad file or variable raises `ConfigError` with one message naming the source, the key and
what was expected; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent import trust
from agent.approval import Rule
from agent.paths import find_project_file, user_config_path  # noqa: F401  (named here too)

ApprovalMode = Literal["read-only", "ask", "auto-edit", "full-auto"]
MCP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # it becomes part of tool names: mcp__NAME__tool


class McpServer(BaseModel):
    """One MCP server, `[mcp_servers.NAME]` in config.toml: a program to start that speaks MCP
    on its stdin/stdout (`command`, `args`, `env`), or a streamable HTTP endpoint (`url`)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, description="Program to start (stdio), e.g. \"npx\".")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables for it. Besides these it gets "
        "only HOME, PATH, SHELL, TERM, USER and LOGNAME, not flashcode's whole environment.")
    cwd: str | None = Field(None, description="Where to start it (default: the repository).")
    url: str | None = Field(None, description="Streamable HTTP endpoint, e.g. "
                            "http://127.0.0.1:8000/mcp (instead of command).")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="HTTP headers sent to `url`.")
    bearer_token_env: str | None = Field(
        None, description="Environment variable holding a token sent to `url` as "
        "`Authorization: Bearer ...` (the token itself never goes in a config file).")
    enabled: bool = Field(True, description="false: configured but not started.")
    startup_timeout: float = Field(30.0, gt=0, description="Seconds to connect and list tools.")
    tool_timeout: float = Field(120.0, gt=0, description="Seconds one tool call may take.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a program speaking MCP on stdio) or url (a "
                             "streamable HTTP endpoint)")
        if self.url is not None:
            Settings._url(self.url)
        for text in [self.command or "", *self.args, *self.env.values(), self.cwd or ""]:
            if "\0" in text:
                raise ValueError("a NUL character cannot be part of a command, argument or "
                                 "environment value")
        return self


class Settings(BaseModel):
    """Everything a user can configure. Each field's description is its documentation."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str | None = Field(
        None,
        description="Local checkpoint directory (DeepSeek-V4 official layout), or `replay:PATH` "
        "to replay a recorded session. Used when no endpoint is set.",
    )
    endpoint: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server (vLLM, SGLang, DeepSeek API, "
        "`flashcode serve`), e.g. http://127.0.0.1:8000/v1. Takes precedence over `model`.",
    )
    model_name: str | None = Field(
        None, description="Model name to request from the endpoint, e.g. deepseek-v4-flash."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the endpoint's API key "
        "(the key itself never goes in a config file).",
    )
    escalation_endpoint: str | None = Field(
        None, description="Endpoint of the stronger model used for the hard tail (e.g. V4-Pro)."
    )
    escalation_model_name: str | None = Field(
        None, description="Model name at `escalation_endpoint`."
    )
    approval: ApprovalMode = Field(
        "ask",
        description="What the agent may do without asking: read-only, ask (ask before writes "
        "and commands), auto-edit (edits allowed, commands asked), full-auto.",
    )
    max_steps: int = Field(100, ge=1, description="Most model turns in one task.")
    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens (prompt + generated) spent on one task."
    )
    max_seconds: float | None = Field(
        None, gt=0, description="Most wall-clock seconds spent on one task."
    )
    max_cost: float | None = Field(
        None, gt=0, description="Most dollars spent on one task (needs `prices`)."
    )
    allow: list[str] = Field(
        default_factory=list,
        description="Approval rules that never ask, e.g. [\"shell(pytest*)\", \"edit\"].",
    )
    deny: list[str] = Field(
        default_factory=list,
        description="Approval rules that always refuse, e.g. [\"shell(git push*)\"]; they win.",
    )
    escalate_after: int = Field(
        2, ge=1, description="Failed verifications before the escalation model takes over."
    )
    context_window: int | None = Field(
        None, ge=1024, description="Override the model's context window (tokens)."
    )
    thinking: bool = Field(True, description="Let the model reason before answering.")
    rewrite: bool = Field(
        True, description="Rewrite a request into a task spec shown before work starts."
    )
    sandbox: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Run shell commands under bubblewrap (repo writable, rest read-only, "
        "no network): auto uses it when installed.",
    )
    kernels: Literal["auto", "triton", "ref"] = Field(
        "auto",
        description="Engine kernels: auto (Triton on CUDA, plain PyTorch on CPU), triton, ref.",
    )
    device_map: str | None = Field(
        None, description="Engine placement: cpu, cuda:0, cuda:0,cuda:1, cuda:0,experts=cpu "
        "(routed experts in host memory), auto, or units like layers.0-20=cuda:0,...",
    )
    kv_cache_gib: float = Field(
        8.0, ge=0, description="Engine: memory for cached prompt states, so a turn prefills "
        "only its new tokens (GiB; least recently used dropped first; 0: no limit).",
    )
    kv_dir: str = Field(
        "", description="Engine: where prompt states are saved so a resumed session or a "
        "second run starts warm; empty: $XDG_CACHE_HOME/flashcode/kv; `off`: not saved.",
    )
    kv_dir_gib: float = Field(
        20.0, ge=0, description="Engine: disk for saved prompt states (GiB; oldest removed "
        "first; 0: no limit).",
    )
    resident: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Engine: keep float copies of the FP8/FP4 weights in memory (4 bytes a "
        "weight instead of 1 or 1/2; several times faster on CPU): auto (on CPU, when they fit "
        "in half the available memory), on, off. true/false and 1/0 mean on/off.",
    )
    decode: Literal["auto", "eager", "compile"] = Field(
        "auto",
        description="Engine decode steps: auto (compiled and CUDA graphs on a GPU, eager on "
        "the CPU), eager (no compile, no graphs; the --eager flag), compile (torch.compile; "
        "on the CPU the first compile takes minutes, cached on disk for later runs).",
    )
    output_cap_mib: float = Field(
        16.0, gt=0, description="Most output of one shell or test command kept on disk (MiB): "
        "its head and tail; the middle is dropped and the result says how much.",
    )
    theme: Literal["dark", "light"] = Field("dark", description="TUI colour theme.")
    test_command: str | None = Field(
        None, description="The command that runs the project's tests (the `tests` tool and "
        "`flashcode fix`); default: detected from the project's files.",
    )
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="Price per million tokens by kind (input, cached_input, output), for the "
        "cost shown at the end of a task.",
    )
    mcp_servers: dict[str, McpServer] = Field(
        default_factory=dict,
        description="MCP servers whose tools the agent may use, as [mcp_servers.NAME] tables "
        "(command/args/env, or url). Their tools appear as mcp__NAME__TOOL and are approved "
        "like shell commands. A repository's .flashcode.toml can add one only once trusted.",
    )

    @field_validator("endpoint", "escalation_endpoint")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (a bad port raises here)
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or \
                any(c.isspace() or ord(c) < 32 for c in url):
            raise ValueError("write an http:// or https:// URL with a host, e.g. "
                             "http://127.0.0.1:8000/v1")
        return url

    @field_validator("model", "model_name", "api_key_env", "kv_dir", "device_map",
                     "escalation_model_name", "test_command")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if isinstance(value, str) and "\0" in value:
            raise ValueError("a NUL character cannot be part of a name or path")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_names(cls, servers: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in servers:
            if not MCP_NAME.match(name):
                raise ValueError(f"server name {name[:40]!r}: use 1 to 32 letters, digits, _ "
                                 "or - (it becomes part of tool names, mcp__NAME__tool)")
        return servers

    @field_validator("allow", "deny")
    @classmethod
    def _rules(cls, rules: list[str]) -> list[str]:
        for text in rules:
            Rule.parse(text)  # a ValueError that says how to write one
        return rules

    @field_validator("resident", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        # FLASHCODE_RESIDENT=1 predates the setting, and TOML has booleans
        words = {"1": "on", "true": "on", "yes": "on", "on": "on", "auto": "auto",
                 "0": "off", "false": "off", "no": "off", "off": "off"}
        if isinstance(value, bool):
            return "on" if value else "off"
        return words.get(value.strip().lower(), value) if isinstance(value, str) else value


class ConfigError(Exception):
    """A configuration source is wrong; the message says where, which key, and what is expected."""


@dataclass(frozen=True)
class ConfigSources:
    """Where each layer comes from; tests point these at temp dirs."""

    user_file: Path | None
    project_file: Path | None
    environ: dict[str, str]
    project_trusted: bool = False  # the user trusts the repository (or named the file: --config)


ENV_PREFIX = "FLASHCODE_"


def default_sources(cwd: Path | None = None) -> ConfigSources:
    project = find_project_file(cwd or Path.cwd())
    return ConfigSources(
        user_file=user_config_path(),
        project_file=project,
        environ=dict(os.environ),
        project_trusted=project is not None and trust.is_trusted(project.parent),
    )


def load_settings(sources: ConfigSources, flags: dict[str, Any] | None = None,
                  ignored: list[str] | None = None) -> Settings:
    """Merge every layer and validate each one as it is applied, so errors name their source.
    The keys an untrusted project file set but may not are left out and added to `ignored`."""
    merged: dict[str, Any] = {}
    if sources.user_file is not None and sources.user_file.is_file():
        _apply(merged, _read_toml(sources.user_file), str(sources.user_file))
    if sources.project_file is not None and sources.project_file.is_file():
        layer = _read_toml(sources.project_file)
        _check_keys(layer, str(sources.project_file))
        if not sources.project_trusted:
            layer, skipped = trust.untrusted_layer(layer, Settings(**merged).model_dump())
            (ignored if ignored is not None else []).extend(skipped)
        _apply(merged, layer, str(sources.project_file))
    _apply(merged, _from_environ(sources.environ), "environment")
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if "model" in flags and "endpoint" not in flags:
        merged.pop("endpoint", None)  # --model on the command line beats a configured endpoint
    _apply(merged, flags, "command line")
    return Settings(**merged)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc}). Fix the syntax or remove the file."
        raise ConfigError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from None


def _from_environ(environ: dict[str, str]) -> dict[str, Any]:
    """`FLASHCODE_MAX_STEPS=5` → {"max_steps": "5"}; pydantic converts the strings."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            if key in Settings.model_fields and key not in ("prices", "allow", "deny",
                                                             "mcp_servers"):
                out[key] = value
    return out


def _check_keys(layer: dict[str, Any], source: str) -> None:
    for key in layer:
        if key not in Settings.model_fields:
            near = get_close_matches(key, Settings.model_fields, n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            known = ", ".join(sorted(Settings.model_fields))
            raise ConfigError(f"{source}: unknown key '{key}'.{hint} Known keys: {known}.")


def _apply(merged: dict[str, Any], layer: dict[str, Any], source: str) -> None:
    _check_keys(layer, source)
    if isinstance(layer.get("mcp_servers"), dict) and isinstance(merged.get("mcp_servers"),
                                                                 dict):
        # servers add up across layers; a later layer's server of the same name replaces it
        layer = {**layer, "mcp_servers": {**merged["mcp_servers"], **layer["mcp_servers"]}}
    candidate = {**merged, **layer}
    try:
        Settings(**candidate)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        expected = Settings.model_fields[key].description if key in Settings.model_fields else ""
        raise ConfigError(
            f"{source}: key '{key}' has a bad value {err.get('input')!r}: {err['msg']}."
            + (f" Expected: {expected}" if expected else "")
        ) from None
    merged.update(layer)
