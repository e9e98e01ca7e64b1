"""OpenAI CLIP's byte-level BPE tokenizer, written for this package.

Text is cleaned (HTML entities unescaped, Unicode NFC, whitespace collapsed, lower-cased), split into
words, numbers and punctuation runs, each word's UTF-8 bytes mapped to printable characters and merged
by the ranked byte-pair merges of the vocabulary file that ships with the package (MIT licence, from
github.com/openai/CLIP). A word's last symbol carries the end-of-word marker ``</w>``. OpenAI also runs
``ftfy.fix_text``, which repairs mis-decoded text (mojibake); here text is taken to be valid Unicode and
only NFC-normalised, which is what ftfy does to text that needs no repair.
"""

from __future__ import annotations

import gzip
import html
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files

import regex
import torch

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # the vocabulary's 49 408 tokens: 256 bytes × 2 (with and without </w>), merges, 2 specials
START, END = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77

# Words (letters), single digits, runs of other non-space symbols, and English contractions, as CLIP splits them.
_WORDS = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


@lru_cache(maxsize=1)
def byte_symbols() -> dict[int, str]:
    """Each byte → one printable character: printable Latin-1 bytes stand for themselves, the others are
    moved to code points from 256 up, so no byte maps to whitespace or a control character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    # Order matters: the vocabulary lists the printable bytes first, then the moved ones.
    symbols = {byte: chr(byte) for byte in printable}
    moved = [byte for byte in range(256) if byte not in symbols]
    symbols.update({byte: chr(256 + n) for n, byte in enumerate(moved)})
    return symbols


def clean(text: str) -> str:
    """What CLIP tokenises: entities unescaped (twice, as OpenAI does), NFC, single spaces, lower case."""
    text = html.unescape(html.unescape(unicodedata.normalize("NFC", text)))
    return " ".join(text.split()).lower()


class Tokenizer:
    """``tokenizer(["a photo of a cat"])`` → (N, 77) token ids with start/end markers, zero-padded."""

    def __init__(self):
        with gzip.open(files(__package__) / VOCAB_FILE, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")[1 : N_MERGES + 1]  # the first line is a version header
        merges = [tuple(line.split()) for line in lines]
        alphabet = list(byte_symbols().values())
        tokens = alphabet + [s + "</w>" for s in alphabet] + ["".join(m) for m in merges] + [START, END]
        self.encoder = {token: i for i, token in enumerate(tokens)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.ranks = {merge: i for i, merge in enumerate(merges)}
        self.byte_decoder = {symbol: byte for byte, symbol in byte_symbols().items()}
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self._cache = {START: START, END: END}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, word: str) -> list[str]:
        """Symbols of one word after applying merges by rank, lowest first."""
        if word in self._cache:
            return self._cache[word].split(" ")
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = " ".join(symbols)
        return symbols

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without start/end markers."""
        to_symbol = byte_symbols()
        ids = []
        for word in _WORDS.findall(clean(text)):
            mapped = "".join(to_symbol[b] for b in word.encode("utf-8"))
            ids += [self.encoder[s] for s in self.bpe(mapped)]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (markers dropped); word ends become spaces."""
        raw = bytearray()
        for i in ids:
            if int(i) in (self.start_id, self.end_id, 0):
                continue
            token = self.decoder[int(i)]
            raw += bytes(self.byte_decoder[c] for c in token.removesuffix("</w>"))
            if token.endswith("</w>"):
                raw += b" "
        return raw.decode("utf-8", errors="replace").strip()

    def __call__(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
        """(N, context_length) int64 ids: start marker, tokens, end marker, zeros. Longer texts are cut and
        still end with the end marker (the text tower pools at the end marker)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text)][: context_length - 1] + [self.end_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out
