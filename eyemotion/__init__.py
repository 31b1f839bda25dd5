"""eyemotion: real-time emotion-elicitation sessions over Lab Streaming Layer.

The core package holds the one stream contract (`streams`), the TOML config (`config`), session folders
(`session`), the node base class and supervisor (`nodes`) and the one `eyemotion` command (`cli`).
"""

__version__ = "0.1.0"


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 clip`, `2 clips` (or `nouns` for an irregular plural)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


class UserError(Exception):
    """A problem the user can fix: the CLI prints it as one line (no traceback) and exits non-zero.

    The message names the problem and the fix, e.g. "camera 3 cannot be opened; available: 0, 1".
    """

    exit_code = 2
