"""The ``augment`` command line: thin commands that parse, load a config, call one function.

Exit status: 0 success, 1 a data or stage error (the message names the file),
2 a usage or configuration error (the message names the flag or dotted key).

One module per concern; this one holds the group and adds their commands:

- ``output``: the error handling (one line, an exit status) and printing helpers;
- ``run``: ``run`` and ``stages`` (pipelines);
- ``data``: ``datasets describe``, ``synth`` and ``align`` (datasets on disk);
- ``synth_options``: the ``synth`` options, made from the fields of ``SynthConfig``;
- ``manifests``: ``inspect`` and ``export`` (written manifests);
- ``edit``: ``edit`` (your own photos);
- ``generators``: ``generators`` and ``generators ship`` (the generators shipped with augment);
- ``evaluate``: ``evaluate`` and ``pairs`` (recognizers).

Heavy modules (torch and the stages) are imported inside the commands, so that
``augment --help`` stays fast.
"""

from __future__ import annotations

import click

from augment import __version__
from augment.cli.data import align_cmd, datasets, synth_cmd
from augment.cli.edit import edit_cmd
from augment.cli.evaluate import evaluate_cmd, pairs_cmd
from augment.cli.generators import generators
from augment.cli.manifests import export_cmd, inspect_cmd
from augment.cli.run import run, stages

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="augment")
def cli() -> None:
    """SaGAN face-attribute augmentation for face-recognition training sets."""


for _command in (run, stages, datasets, synth_cmd, export_cmd, edit_cmd, generators, inspect_cmd, evaluate_cmd,
                 pairs_cmd, align_cmd):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="augment")
