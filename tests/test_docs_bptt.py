"""docs/bptt.md cannot silently rot: its code runs, prints what the page shows, and the numbers its
prose quotes are numbers the code prints.

The page's mechanism, read from the Markdown itself:

- every fenced ```python block is run, in order, each in a fresh namespace, from the repository's root;
- the ```text block right after it is what it prints: the words must be the same (runs of spaces
  count as one), each number equal to the printed one up to one unit in the last digit the page
  shows (so a rounding that flips the last digit on another BLAS does not fail the test);
- every decimal number in the prose (outside code: fenced blocks, `inline code` and headings),
  written 0.54, 5.1·10⁻²⁷ or 2.6·10⁷, must be within half a unit of its last digit of some
  number the blocks actually printed. A number that is an input rather than a measurement is
  written as code (`0.5`) and not checked; section numbers (§6.2) are not numbers.
"""
import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bptt.md"

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?\.\d+")
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
PROSE_NUMBER = re.compile(r"(?<![§\d.])(\d+\.\d+|\d+(?=·10))(?:·10([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))?(?![\d.]\d)")


def code_blocks(text):
    """[(source, expected output or None)]: each python block and the text block right after it."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    pairs = []
    for k, (language, body, _, end) in enumerate(blocks):
        if language != "python":
            continue
        following = blocks[k + 1] if k + 1 < len(blocks) else None
        adjacent = following is not None and following[0] == "text" and not text[end:following[2]].strip()
        pairs.append((body, following[1] if adjacent else None))
    return pairs


def prose(text):
    """The page without its fenced blocks, inline code spans and headings."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def prose_numbers(text):
    """[(as written, value, half a unit of its last digit)] for every decimal number in the prose."""
    found = []
    for match in PROSE_NUMBER.finditer(prose(text)):
        mantissa, exponent = match.group(1), match.group(2)
        power = int(exponent.translate(SUPERSCRIPTS)) if exponent else 0
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        found.append((match.group(0), float(mantissa) * 10.0 ** power, 0.5 * 10.0 ** (power - decimals)))
    return found


def tokens(output):
    """(words, numbers with the unit of their last digit) of printed text."""
    words, numbers = [], []
    for piece in re.split(f"({NUMBER.pattern})", output):
        if NUMBER.fullmatch(piece):
            mantissa, _, exponent = piece.lower().partition("e")
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            numbers.append((float(piece), 10.0 ** ((int(exponent) if exponent else 0) - decimals)))
            words.append("<n>")
        else:
            words.append(" ".join(piece.split()))
    return [w for w in words if w], numbers


def run_block(source):
    """(what a block prints, the exception it raised or None), run from the repository's root in a fresh
    namespace."""
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, str(DOC), "exec"), {"__name__": "__doc_snippet__"})
    except Exception as error:  # reported by the block's own test, so that one broken block fails only itself
        return printed.getvalue(), error
    finally:
        os.chdir(cwd)
    return printed.getvalue(), None


TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = code_blocks(TEXT)


@pytest.fixture(scope="module")
def printed():
    return [run_block(source) for source, _ in BLOCKS]


def test_the_page_has_code_to_check():
    assert len(BLOCKS) >= 6 and all(expected is not None for _, expected in BLOCKS)
    assert len(prose_numbers(TEXT)) >= 20


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_prints_what_the_page_shows(index, printed):
    source, expected = BLOCKS[index]
    output, error = printed[index]
    if error is not None:
        raise error
    got_words, got_numbers = tokens(output)
    want_words, want_numbers = tokens(expected)
    where = f"block {index} of docs/bptt.md, starting {source.splitlines()[0]!r}, printed:\n{output}"
    assert got_words == want_words, where
    for (got, _), (want, unit) in zip(got_numbers, want_numbers):
        assert abs(got - want) <= unit * 1.000001 + 1e-300, f"{got} is not {want}: {where}"


def test_prose_quotes_only_printed_numbers(printed):
    values = np.array([value for output, _ in printed for value, _ in tokens(output)[1]])
    missing = [written for written, value, half_unit in prose_numbers(TEXT)
               if not np.any(np.abs(values - value) <= half_unit * 1.000001)]
    assert not missing, f"numbers in docs/bptt.md's prose that no code block prints: {missing}"


def test_the_checks_catch_a_wrong_number():
    """The mechanism itself: a changed digit in an output or in the prose is found."""
    assert tokens("ratio 5.1e-27, steps: 64")[1] == [(5.1e-27, 1e-28), (64.0, 1.0)]
    assert [w for w, _, _ in prose_numbers("falls to 5.1·10⁻²⁷ (§6.2) and `0.5`, then 0.54 ")] == ["5.1·10⁻²⁷", "0.54"]
    written, value, half_unit = prose_numbers("grows 2.6·10⁷-fold")[0]
    assert value == pytest.approx(2.6e7) and half_unit == pytest.approx(0.05e7)
