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
    session.run(
        "ruff", "format", "--check", "src", "tests", "examples", "benchmarks", "noxfile.py"
    )


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
    """Benchmarks side by side with the official SDK."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def stress(session: nox.Session) -> None:
    """The full fault sweeps and the soak (slow)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", "-q", *session.posargs)
