"""SIGINT and SIGTERM during training: the first asks the loop to stop after the current step
(it then saves a checkpoint and exits 0), a second one exits at once.

Python runs signal handlers only between bytecodes of the main thread, which may be inside a
long ``Session.run``. So the handlers themselves do nothing: the interpreter's C-level
handler writes each signal's number to a wakeup pipe, and a watcher thread reads it the
moment it arrives. A second signal ends the process with ``os._exit`` even mid-step or
mid-save; that corrupts nothing, because checkpoint files and the state file are written to
temporary names and renamed (see ``edvr.checkpoint``).
"""

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager: while inside, ``requested`` is set by the first SIGINT/SIGTERM.

    ``name`` is the first signal's name (e.g. 'SIGTERM'). Outside the main thread (where
    handlers cannot be installed) it does nothing and signals keep their usual effect.
    """

    def __init__(self, log=None):
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.requested = threading.Event()
        self.name = None
        self._previous, self._pipe, self._old_wakeup, self._thread = {}, None, None, None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # set_wakeup_fd needs a non-blocking descriptor
        self._pipe = (read_fd, write_fd)
        self._old_wakeup = signal.set_wakeup_fd(write_fd)
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, _ignore)
        self._thread = threading.Thread(target=self._watch, name='stop-signals', daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._pipe is None:
            return False
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._pipe[1])  # the watcher's read returns b'' and it ends
        self._thread.join(timeout=5)
        os.close(self._pipe[0])
        self._pipe = None
        return False

    def _watch(self):
        while True:
            try:
                data = os.read(self._pipe[0], 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in SIGNALS:
                    continue
                name = signal.Signals(signum).name
                if not self.requested.is_set():
                    self.name = name
                    self.requested.set()
                    self.log(
                        f'{name}: stopping after this step and saving a checkpoint; '
                        f'send it again to exit at once without saving'
                    )
                else:
                    sys.stderr.write(
                        f'{name} again: exiting at once; the last saved '
                        f'checkpoint and the state file are intact\n'
                    )
                    sys.stderr.flush()
                    os._exit(128 + signum)


def _ignore(signum, frame):
    """The Python-level handler: the watcher thread does the work (see the module doc)."""
