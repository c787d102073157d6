"""Option declarations shared by the commands (chat, batch, smoke): declared once, reused.

Only typer is imported here: ``anyllm --help`` must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PANEL_MODEL = "Model and provider"
PANEL_PARAMS = "Completion parameters"
PANEL_OUTPUT = "Output"
PANEL_CONN = "Connection"

ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", "-p", metavar="NAME", rich_help_panel=PANEL_MODEL,
                 help="Profile from the config, or a provider name from the catalog. "
                      "Default: $ANYLLM_PROFILE, the config's default_profile, else the local "
                      "model."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="MODEL", rich_help_panel=PANEL_MODEL,
                 help="Model name, or PROVIDER:MODEL (split only when PROVIDER is a known "
                      "provider or profile)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", rich_help_panel=PANEL_MODEL,
                 help="Config file. Default: $ANYLLM_CONFIG, else the platform config dir.",
                 show_default=False),
]
SystemOpt = Annotated[
    str | None,
    typer.Option("--system", "-s", metavar="TEXT", rich_help_panel=PANEL_PARAMS,
                 help="System prompt."),
]
TemperatureOpt = Annotated[
    float | None,
    typer.Option("--temperature", metavar="FLOAT", rich_help_panel=PANEL_PARAMS,
                 help="Sampling temperature (0-2)."),
]
TopPOpt = Annotated[
    float | None,
    typer.Option("--top-p", metavar="FLOAT", rich_help_panel=PANEL_PARAMS,
                 help="Nucleus sampling probability mass (0-1)."),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option("--max-tokens", metavar="N", rich_help_panel=PANEL_PARAMS,
                 help="Most tokens to generate."),
]
StopOpt = Annotated[
    list[str] | None,
    typer.Option("--stop", metavar="TEXT", rich_help_panel=PANEL_PARAMS,
                 help="Stop sequence (repeatable)."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", metavar="N", rich_help_panel=PANEL_PARAMS,
                 help="Seed for best-effort reproducible sampling."),
]
ReasoningEffortOpt = Annotated[
    str | None,
    typer.Option("--reasoning-effort", metavar="LEVEL", rich_help_panel=PANEL_PARAMS,
                 help="Reasoning effort: none, minimal, low, medium, high (provider-dependent)."),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", metavar="KEY=VALUE", rich_help_panel=PANEL_PARAMS,
                 help="Extra provider parameter (repeatable); VALUE is parsed as JSON when it "
                      "parses, else taken as a string."),
]
LongOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", metavar="KEY=VALUE", rich_help_panel=PANEL_PARAMS,
                 help="Extra provider parameter (repeatable); VALUE is parsed as JSON when it "
                      "parses, else taken as a string."),
]
ApiBaseOpt = Annotated[
    str | None,
    typer.Option("--api-base", metavar="URL", rich_help_panel=PANEL_CONN,
                 help="Override the provider's base URL."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", rich_help_panel=PANEL_CONN, min=0.001,
                 help="Longest wait for a connection or for the next piece of a reply "
                      "[default: 60]."),
]
StrictOpt = Annotated[
    bool,
    typer.Option("--strict", rich_help_panel=PANEL_CONN,
                 help="Fail (exit 2) instead of warning when the provider cannot take a "
                      "parameter."),
]
