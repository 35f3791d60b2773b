"""The one command-line runner of the edvr tools (train, infer, evaluate, convert, freeze and
the data tools): the shared ``--config`` and thread flags, one error prefix
(``edvr.TOOL: error: ...``, as argparse's own usage errors) and one table of exit codes.

An error is reported in one line, without a traceback, when it says what was wrong with the
input: a ``ValueError`` or ``OSError`` (bad flags, config, data, files), or an error class
with an ``exit_code`` attribute (checkpoints, a lost worker). Anything else is a bug and keeps
its traceback.
"""

import argparse
import sys

EXIT_OK = 0
EXIT_CHECKPOINT = 1  # no, a damaged or an unfitting checkpoint; a checkpoint not saved
EXIT_USAGE = 2  # bad flags (argparse's own code), config, dataset, input or output files
EXIT_NONFINITE = 3  # training stopped on a non-finite loss
EXIT_WORKER_LOST = 4  # multi-worker training lost a worker
EXIT_DOWNLOAD = 5  # a download failed after its retries
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): nothing half-written is left

EXIT_CODES = (
    (EXIT_OK, 'done'),
    (
        EXIT_CHECKPOINT,
        'checkpoint: none where one was expected, damaged, written for another '
        'config, or could not be saved',
    ),
    (EXIT_USAGE, 'usage or input: bad flags, config, dataset, input or output files, device'),
    (EXIT_NONFINITE, 'training stopped on a non-finite loss'),
    (EXIT_WORKER_LOST, 'multi-worker training lost a worker'),
    (EXIT_DOWNLOAD, 'a download failed after its retries'),
    (EXIT_INTERRUPTED, 'interrupted (Ctrl-C); nothing half-written is left'),
)


def tool_parser(
    tool,
    description,
    config_help=None,
    config_default=None,
    config_required=False,
    threads=True,
    checkpoint=False,
):
    """An ArgumentParser for ``python -m edvr.TOOL`` with the shared flags: ``--config``
    (when ``config_help`` is given), the thread-pool flags (``threads``) and, for the tools
    that read a trained model (``checkpoint``), ``--checkpoint`` and a ``--config`` that
    defaults to the run folder's (edvr.config.load_run_config)."""
    parser = argparse.ArgumentParser(prog=f'edvr.{tool}', description=description)
    if checkpoint:
        config_help = config_help or (
            'YAML config of the model (default: config.yaml of the '
            'checkpoint\'s run folder, which edvr.train writes)'
        )
    if config_help is not None:
        parser.add_argument(
            '--config', default=config_default, required=config_required, help=config_help
        )
    if checkpoint:
        parser.add_argument(
            '--checkpoint',
            required=True,
            help='checkpoint prefix, or a run folder (its latest checkpoint)',
        )
    if threads:
        from edvr.session import add_thread_flags

        add_thread_flags(parser)
    return parser


def exit_code(error):
    """The exit code for ``error`` from the table, or None for an unexpected error (a bug)."""
    code = getattr(error, 'exit_code', None)
    if code is not None:
        return code
    if isinstance(error, FloatingPointError):
        return EXIT_NONFINITE
    if isinstance(error, (ValueError, OSError)):
        return EXIT_USAGE
    return None


def run(tool, body, args):
    """Runs ``body(args)`` and returns the exit code: its return value (None: 0), or the code
    of the error it raised, after one line ``edvr.TOOL: error: MESSAGE`` on stderr. A
    KeyboardInterrupt's message (if any) says what was left: ``edvr.TOOL: interrupted; ...``."""
    try:
        code = body(args)
    except KeyboardInterrupt as interrupt:
        detail = f'; {interrupt}' if str(interrupt) else ''
        print(f'edvr.{tool}: interrupted{detail}', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - re-raised below unless it is in the table
        code = exit_code(error)
        if code is None:
            raise
        print(f'edvr.{tool}: error: {error}', file=sys.stderr)
        return code
    return EXIT_OK if code is None else code


def main(tool, parser, body, argv=None):
    """Parses ``argv`` with ``parser`` (a usage error exits EXIT_USAGE) and ``run``s ``body``."""
    return run(tool, body, parser.parse_args(argv))
