"""``augengine plugins``: what is installed, and what is broken."""

from __future__ import annotations

import json

import click

from augengine.cli.common import verbose_option, with_example
from augengine.registry import list_plugins


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(["generator", "filter", "classifier", "evaluator"]), help="Only this kind.")
@verbose_option
@with_example("augengine plugins --json\nAUGENGINE_LOAD_PLUGINS=acgan,resnet augengine plugins")
def plugins_command(as_json: bool, kind: str | None):
    """List every plugin: kind, name, package, version, description and config fields.

    Broken plugins (failed to import or register, or a name claimed twice) are listed with
    their error; the rest keep working.
    """
    infos = list_plugins(kind)
    if as_json:
        click.echo(json.dumps([i.to_json() for i in infos], indent=2, default=str))
        return
    if not infos:
        click.echo("no plugins loaded (check AUGENGINE_LOAD_PLUGINS)")
        return
    for i in infos:
        if i.error:
            click.echo(f"BROKEN  {i.kind or '?':10} {i.name or i.entry_point or '?':16} {i.package} {i.version}")
            click.echo(f"        {i.error}")
            continue
        click.echo(f"{i.kind:10} {i.name:16} {i.package} {i.version}  {i.description}")
        for f in i.cls.config_fields():
            default = "(required)" if f["required"] else repr(f["default"])
            click.echo(f"           {f['name']}: {f['type']} = {default}")


def register(main: click.Group) -> None:
    main.add_command(plugins_command)
