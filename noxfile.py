"""Project tasks: `nox -s tests lint typecheck` (the CI set), `demo`, `bench`, `stress`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = None  # the interpreter nox runs under


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (the fast, deterministic set; `-m slow` sweeps live in `stress`)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on a file that uses the public API as users do."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The demo: a scripted conversation on the embedded loopback server (no key, no network)."""
    session.install("-e", ".")
    session.run("triostream", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the official SDK (~15 min; `nox -s bench -- --quick`: < 2 min).

    The full run writes benchmarks/results/ (README.md, plots); `--quick` writes build/bench-quick/.
    See `python -m benchmarks --help` for the other options (--rounds, --budget, --only, --out).
    """
    session.install("-e", ".[test]", "matplotlib>=3.8", "numpy>=1.26")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def stress(session: nox.Session) -> None:
    """The full fault and cancellation sweeps, 1,000 streams, the soak and long fuzzing.

    Runs the ``slow`` tests and ends with a summary (tests/stress_summary.py): runs,
    faults injected and outcomes by class per sweep, memory per stream, the soak.
    atheris is installed when a wheel exists for this platform; otherwise its
    fuzzing run is skipped.
    """
    from nox.command import CommandFailed

    session.install("-e", ".[test]")
    try:
        session.install("atheris")
    except CommandFailed:
        session.warn("atheris did not install: its fuzzing run is skipped")
    # `python -m` puts the project directory on sys.path, so `-p tests.stress_summary` imports.
    session.run(
        "python", "-m", "pytest", "-p", "tests.stress_summary", "-m", "slow", "-q", *session.posargs
    )
