"""The ``augengine`` command line (click). One verb per arrow of the data flow.

Errors a user can cause print as one line (``error: …``) with exit status 2; ``-v`` adds the
traceback. Each command module registers itself on :data:`main`.
"""

from __future__ import annotations

import sys
import traceback

import click

from augengine import __version__
from augengine.cli.common import VERBOSE, cli_message, verbose_option
from augengine.errors import AugengineError

__all__ = ["main"]


class AugengineGroup(click.Group):
    """Turns user errors into one line (no traceback unless -v)."""

    def main(self, *args, **kwargs):  # noqa: D401 - click API
        VERBOSE["on"] = False
        try:
            return super().main(*args, standalone_mode=False, **{k: v for k, v in kwargs.items() if k != "standalone_mode"})
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted: nothing finished was lost; run the same command with --resume to continue", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing finished was lost; run the same command with --resume to continue", err=True)
            sys.exit(130)
        except (AugengineError, OSError) as e:
            if _verbose():
                traceback.print_exc()
            click.echo(f"error: {cli_message(e)}", err=True)
            sys.exit(2)


def _verbose() -> bool:
    return VERBOSE["on"]


@click.group(cls=AugengineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="augengine")
@verbose_option
def main():
    """augengine: GAN data augmentation for medical images, with an honest verdict.

    \b
    Flow: data → split → fit a generator → generate a SyntheticSet → filter
          → fit a classifier on real ∪ synthetic → evaluate → report.
    \b
    Example:
      augengine plugins
      augengine data inspect ../shared/data/ham10000
      augengine bench            # the quick preset on the built-in demo set
    """


def _register_commands() -> None:
    from augengine.cli import plugins_cmd, run_cmds  # noqa: I001 - registration order = help order

    plugins_cmd.register(main)
    run_cmds.register(main)
    from augengine.cli import bench_cmd, data_cmd

    data_cmd.register(main)
    bench_cmd.register(main)


_register_commands()
