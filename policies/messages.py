"""One-line error messages (torch-free, shared by ``policies`` and ``eval``)."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300, *, first_line: bool = False) -> str:
    """``"TypeName: message"`` on one line, at most ``limit`` characters.

    By default the message's whitespace is collapsed; ``first_line`` keeps only its first line
    (cut at its first sentence when that line is long), for libraries whose later lines are noise.
    """
    if first_line:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else ""
        if len(text) > 120 and ". " in text:
            text = text.split(". ", 1)[0]
    else:
        text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:limit] if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """The checkpoint readers' form: the first line of the message, at most 200 characters."""
    return one_line(exc, 200, first_line=True)


__all__ = ["first_line", "one_line"]
