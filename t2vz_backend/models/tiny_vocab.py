"""The vocabulary of the ``tiny`` smoke-test model's CLIP tokenizer, written as ``vocab.json`` + ``merges.txt``.

CLIP uses byte-level BPE: every byte maps to a printable unicode character (GPT-2's table), a word's last symbol
carries the end-of-word marker ``</w>``, and merges join symbols into larger tokens. This vocabulary keeps the
complete base alphabet (so any text tokenizes), adds a few merges for common prompt words and the two special tokens
of SD's tokenizer. Building it in code keeps the tests and the built-in model offline (no tokenizer download), the
way transformers' own tokenizer tests do it.
"""

from __future__ import annotations

import json
import os

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"  # also SD's padding token
END_OF_WORD = "</w>"

# Merges, in priority order. Each merge's parts must be earlier symbols (base characters or earlier merges).
MERGES = (
    "t h", "th e</w>", "a n", "an d</w>", "c a", "ca t</w>", "d o", "do g</w>", "i n", "in g</w>", "o n</w>",
    "m a", "ma n</w>", "r u", "ru n", "run n", "runn ing</w>", "s e", "se a</w>", "s k", "sk y</w>",
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (256 entries)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)  # bytes without a printable glyph get characters past Latin-1
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def vocabulary() -> dict[str, int]:
    """Token -> id: 256 base symbols, the same with ``</w>``, one token per merge, then BOS and EOS."""
    base = list(bytes_to_unicode().values())
    tokens = base + [symbol + END_OF_WORD for symbol in base]
    tokens += [merge.replace(" ", "") for merge in MERGES]
    tokens += [BOS, EOS]
    return {token: index for index, token in enumerate(tokens)}


def write_vocab(folder: str) -> None:
    """Write ``vocab.json`` and ``merges.txt`` (the files ``CLIPTokenizer.from_pretrained`` reads) into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
        json.dump(vocabulary(), handle, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
