"""How processes end: the ``vaebench`` console script and the worker processes skip the
interpreter's teardown (issue 25: ~1-1.7 s of a default run, and a pool's shutdown waited
as long for each worker) but keep everything an exit must do: exit codes, ``atexit``
handlers, flushed output, joined threads -- and never hang on a thread that does not end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


def test_finish_keeps_the_exit_code_handlers_output_and_threads(tmp_path):
    mark, joined = tmp_path / "atexit", tmp_path / "thread"
    proc = _python(f"""
        import atexit, sys, threading, time
        from pathlib import Path
        from vaebench.cli.finish import finish

        def late():
            time.sleep(0.5)
            Path({str(joined)!r}).write_text("joined")

        threading.Thread(target=late).start()  # not a daemon: exit waits for it
        atexit.register(lambda: Path({str(mark)!r}).write_text("ran"))
        sys.stdout.write("buffered, no newline")
        sys.stderr.write("to stderr")
        finish(7)
        print("never")
    """)
    assert proc.returncode == 7
    assert proc.stdout == "buffered, no newline" and proc.stderr == "to stderr"
    assert mark.read_text() == "ran" and joined.read_text() == "joined"


def test_finish_ends_a_process_whose_thread_never_ends():
    proc = _python("""
        import threading
        from vaebench.cli.finish import finish

        threading.Thread(target=threading.Event().wait).start()  # waits forever
        finish(130, seconds=1)
    """, timeout=60)  # fmt: skip
    assert proc.returncode == 130
    assert "still running after 1 s; exiting without them" in proc.stderr


def test_a_stopped_command_waits_seconds_not_a_minute_for_stuck_threads():
    # Ctrl-C with 2 workers once left the pool's manager thread waiting on a half-sent result:
    # the command hung 60 s after saying "interrupted"
    from vaebench.cli.finish import EXIT_SECONDS, INTERRUPTED_EXIT_SECONDS, watchdog_seconds

    assert [watchdog_seconds(c) for c in (129, 130, 143)] == [INTERRUPTED_EXIT_SECONDS] * 3
    assert INTERRUPTED_EXIT_SECONDS <= 5 < EXIT_SECONDS
    assert watchdog_seconds(0) == watchdog_seconds(1) == watchdog_seconds(2) == EXIT_SECONDS
    proc = _python("""
        import threading
        import vaebench.cli as cli

        threading.Thread(target=threading.Event().wait).start()  # a thread that never ends
        def stopped():  # a command that a Ctrl-C stopped
            raise SystemExit(130)
        cli.main = stopped
        cli.console()
    """, timeout=60)  # fmt: skip
    assert proc.returncode == 130
    assert "still running after 5 s; exiting without them" in proc.stderr


def test_exit_code_is_computed_as_python_does():
    from vaebench.cli.finish import exit_code

    assert exit_code(None) == 0 and exit_code(3) == 3 and exit_code(0) == 0
    assert exit_code(False) == 0 and exit_code(True) == 1  # sys.exit(False) is a success


def test_console_under_a_profiler_ends_as_python_does(tmp_path):
    """``python -m cProfile -o FILE -m vaebench.cli ...`` writes its profile: with a profiler
    or tracer set, the console script does not skip the interpreter's exit."""
    out = tmp_path / "prof.out"
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "vaebench.cli", "--version"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "vaebench, version" in proc.stdout and out.stat().st_size > 0


def test_console_script_keeps_exit_codes_and_messages(tmp_path):
    """``vaebench`` (the console entry point) exits 2 with its one-line error on bad input and
    0 after ``--version``; a string ``SystemExit`` prints and exits 1, as Python does."""
    bad = _python(
        "import sys\nsys.argv = ['vaebench', 'run', '--models', 'nope', '--out', "
        f"{str(tmp_path / 'o')!r}]\nfrom vaebench.cli import console\nconsole()"
    )
    assert bad.returncode == 2, bad.stderr
    assert "unknown model 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    ok = _python("import sys\nsys.argv = ['vaebench', '--version']\n"
                 "from vaebench.cli import console\nconsole()")  # fmt: skip
    assert ok.returncode == 0 and "vaebench, version" in ok.stdout
    text = _python("from vaebench.cli.finish import finish, exit_code\nfinish(exit_code('bye'))")
    assert text.returncode == 1 and text.stderr.strip() == "bye"


def test_a_pool_worker_ends_with_its_exit_handlers_and_logging(tmp_path):
    """A worker with :func:`vaebench.processes.end_without_teardown` runs the exit handlers
    registered after it and flushes its logging before ending with code 0."""
    mark, script = tmp_path / "worker-atexit", tmp_path / "pool_script.py"
    script.write_text(
        textwrap.dedent(f"""
        import atexit, logging, multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from pathlib import Path
        from vaebench.processes import end_without_teardown

        def job(path):
            atexit.register(lambda: Path(path).write_text("ran"))
            logging.basicConfig(format="%(message)s")
            logging.getLogger("w").warning("worker says hi")
            return 1

        if __name__ == "__main__":
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=end_without_teardown)
            assert pool.submit(job, {str(mark)!r}).result() == 1
            procs = list(pool._processes.values())
            pool.shutdown(wait=True)
            print([p.exitcode for p in procs])
    """)
    )  # a file: spawn pickles `job` by its module
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0]"
    assert "worker says hi" in proc.stderr
    assert mark.read_text() == "ran"


def test_report_workers_started_ahead_are_taken_over_or_ended():
    """The figure workers started before a run (``vaebench run`` starts them while the grid
    trains) are the pool the report's :func:`figure_pool` uses; unused, they are ended at once
    (a command that fails does not wait for their imports)."""
    proc = _python("""
        import time
        from vaebench.report import drawing

        assert drawing.start_standby()          # python -c: workers may start (2+ cores)
        standby = drawing._STANDBY
        with drawing.figure_pool(True, start_now=False) as pool:
            assert pool is standby and drawing._STANDBY is None
        assert drawing.start_standby()
        procs = list(drawing._STANDBY._pool._processes.values())
        drawing.close_standby()                 # unused: terminated, not waited for
        for p in procs:
            p.join(timeout=30)
        print([p.exitcode for p in procs], drawing._STANDBY)
    """)
    assert "Exception ignored" not in proc.stderr, proc.stderr
    if "AssertionError" in proc.stderr and "start_standby" in proc.stderr:  # one core only
        import os

        assert len(os.sched_getaffinity(0)) < 2, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    codes, standby = proc.stdout.strip().rsplit(" ", 1)
    assert standby == "None" and codes in ("[-15]", "[0]"), proc.stdout


def test_figure_workers_ignore_ctrl_c_and_end_with_their_parent(tmp_path):
    """The report's figure workers live through a whole grid: Ctrl-C (SIGINT to the process
    group) is the parent's to handle, not theirs (no traceback of theirs on stderr), and a
    parent killed with SIGKILL does not leave them waiting for work forever."""
    import contextlib
    import os
    import time

    code = textwrap.dedent(  # python -c: a user's script never starts figure workers
        """
        import signal, sys, time
        from vaebench.report import drawing

        if not drawing.start_standby():
            print("none", flush=True)
            sys.exit(0)
        pool = drawing._STANDBY._pool
        print(pool.submit(signal.getsignal, signal.SIGINT).result().name, flush=True)
        print(*pool._processes, flush=True)
        time.sleep(120)
    """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)  # fmt: skip
    try:
        first = proc.stdout.readline().strip()
        if first == "none":  # one core: no figure worker starts
            assert len(os.sched_getaffinity(0)) < 2
            return
        assert first == "SIG_IGN"
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert workers
    finally:
        proc.kill()
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    for w in workers:
        state = Path(f"/proc/{w}/stat")
        assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z", w
        if state.exists():  # a zombie of this test's own process tree; reap it if ours
            with contextlib.suppress(ChildProcessError):
                os.waitpid(w, os.WNOHANG)
