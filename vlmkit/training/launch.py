"""torchrun for train.py, with a bad input kept to one line: `python -m vlmkit.training.launch [torchrun args]`.

torchrun reports every worker that exits non-zero with a `ChildFailedError` traceback of about 40 lines, even when
the worker exited 2 after printing `error: <file>: <item>: <problem>` (train.py's bad-input contract: rank 0 prints
the line, every rank exits 2). This runs torchrun's own entry point (`torch.distributed.run.main`, every argument
unchanged) and, when the first failed worker exited with status 2, exits 2 without the traceback and without the
elastic agent's "failed (exitcode: 2)" and "Sending process N closing signal SIGTERM" log lines. Any other failure
is reported exactly as torchrun reports it (its ChildFailedError summary lists every failed rank).

What torchrun does not allow: a rank that is still starting when rank 0 exits is stopped by the agent (SIGTERM)
instead of reaching its own exit 2; and torchrun prints its OMP_NUM_THREADS notice when that variable is unset
(train.sh sets it to torchrun's own default, 1, when unset). `train.sh` also runs `train.py --preflight_only` once
before starting the processes, so bad input there never reaches torchrun at all.
"""

from __future__ import annotations

import logging
import sys

EXIT_INPUT_ERROR = 2


class _HideInputErrorExits(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return f"(exitcode: {EXIT_INPUT_ERROR})" not in message and "closing signal SIGTERM" not in message


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_HideInputErrorExits())
    try:
        torchrun(argv)
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        if failure.exitcode == EXIT_INPUT_ERROR:
            return EXIT_INPUT_ERROR  # rank 0 printed the one-line error
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
