"""The word-level tokenizer of the ``tiny`` backbone preset (no download).

The real Kosmos-2 tokenizer (a 65037-token sentencepiece model) lives in the Kosmos-2 folder.
The tiny preset needs a tokenizer that exists without any download, so this module builds a
small, deterministic word-level ``tokenizers`` tokenizer from the task's vocabulary: both
English instructions, the Korean one, RoboVLMs' Kosmos prompt words and common navigation
words. Its ids follow Kosmos-2's conventions: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3,
then the Kosmos-2 markup tokens (``<image>``, ``</image>``, ``<grounding>``, ...).

The built tokenizer is stored in ``assets/tokenizer/tiny/tokenizer.json`` (written by
``python -m policies.vla.tokenizer_tiny``); a test checks that the file and the builder agree,
so a tiny checkpoint keeps decoding the same way.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from mvla_sim.facts import INSTRUCTION_KO, INSTRUCTIONS
from mvla_sim.files import atomic_write_text

logger = logging.getLogger(__name__)

TINY_TOKENIZER_PATH = Path(__file__).resolve().parents[2] / "assets" / "tokenizer" / "tiny" / "tokenizer.json"

SPECIAL_TOKENS: tuple[str, ...] = (
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "<image>",
    "</image>",
    "<grounding>",
    "<phrase>",
    "</phrase>",
    "<object>",
    "</object>",
)
"""Kosmos-2's special and markup tokens, in id order."""

COMMON_WORDS: tuple[str, ...] = (
    # RoboVLMs' Kosmos prompt: "<grounding>An image of a robot {instruction}"
    "an",
    "image",
    "of",
    "a",
    "robot",
    # navigation and scene words
    "go",
    "move",
    "moving",
    "drive",
    "forward",
    "backward",
    "back",
    "left",
    "right",
    "straight",
    "turn",
    "strafe",
    "slide",
    "sliding",
    "stop",
    "wait",
    "pass",
    "avoid",
    "around",
    "toward",
    "towards",
    "to",
    "the",
    "and",
    "then",
    "in",
    "on",
    "at",
    "front",
    "behind",
    "side",
    "of",
    "box",
    "parcel",
    "cardboard",
    "obstacle",
    "obstacles",
    "bottle",
    "beverage",
    "drink",
    "cup",
    "goal",
    "target",
    "location",
    "corridor",
    "wall",
    "floor",
    "cable",
    "reach",
    "arrive",
    "navigate",
    "find",
    "near",
    "close",
    "medium",
    "far",
    "green",
    "cap",
    "plastic",
    "dark",
    "evening",
    "day",
    "please",
    "is",
    "it",
    "this",
    "that",
    "with",
    "from",
    "up",
    "down",
    "brown",
    "pot",
    "basket",
    "bin",
    ".",
    ",",
    "!",
    "?",
    ":",
    ";",
    "'",
    '"',
    "-",
    "(",
    ")",
)

_WORD_RE = re.compile(r"\w+|[^\w\s]+", re.UNICODE)


def tiny_vocabulary() -> list[str]:
    """The tiny tokenizer's vocabulary in id order (special tokens first, then sorted words)."""
    texts = [*INSTRUCTIONS.values(), INSTRUCTION_KO, " ".join(COMMON_WORDS)]
    words: set[str] = set()
    for text in texts:
        words.update(_WORD_RE.findall(text.lower()))
    return [*SPECIAL_TOKENS, *sorted(words - set(SPECIAL_TOKENS))]


def build_tiny_tokenizer_json() -> str:
    """Build the tiny tokenizer and return its ``tokenizer.json`` text (deterministic)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {token: idx for idx, token in enumerate(tiny_vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok.to_str(pretty=True)


@lru_cache(maxsize=1)
def load_tiny_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """The tiny preset's tokenizer, from ``assets/tokenizer/tiny`` (or built if the file is absent)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if TINY_TOKENIZER_PATH.is_file():
        tok = Tokenizer.from_file(str(TINY_TOKENIZER_PATH))
    else:
        logger.warning("tiny tokenizer file %s is missing; building it in memory", TINY_TOKENIZER_PATH)
        tok = Tokenizer.from_str(build_tiny_tokenizer_json())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
    )


def write_tiny_tokenizer(path: Path = TINY_TOKENIZER_PATH) -> Path:
    """Write the tiny tokenizer's ``tokenizer.json`` to ``path``."""
    return atomic_write_text(path, build_tiny_tokenizer_json() + "\n")


if __name__ == "__main__":
    print(f"wrote {write_tiny_tokenizer()} ({len(tiny_vocabulary())} tokens)")
