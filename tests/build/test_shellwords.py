"""Docker's word processing for Dockerfile arguments: quotes, escapes and `$VAR`
substitution with the modifiers the Dockerfile reference documents."""

from __future__ import annotations

import pytest

from rootless.build.shellwords import ExpansionError, Lexer

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "EMPTY": "", "SP": "a b",
       "FOO": "/bar", "abc": "hello", "file": "dir/sub/name.tar.gz"}

# (word, expected) with the default escape character
WORD_CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ('he"l"lo', "hello"),
    ("he\\'llo", "he'llo"),
    ('"he\\"llo"', 'he"llo'),
    ("'he\\llo'", "he\\llo"),           # nothing escapes inside single quotes
    ('"he\\llo"', "he\\llo"),           # only " $ \\ are escaped inside double quotes
    ('"a\\\\b"', "a\\b"),
    ("\\$FOO", "$FOO"),                 # the reference's COPY \\$FOO example
    ("'$FOO'", "$FOO"),
    ('"$FOO"', "/bar"),
    ("$FOO", "/bar"),
    ("${FOO}", "/bar"),
    ("${FOO}/baz", "/bar/baz"),
    ("$FOO/baz", "/bar/baz"),
    ("x$FOO.y", "x/bar.y"),
    ("$FOOx", ""),                      # the name runs on: FOOx is unset
    ("${FOO}x", "/barx"),
    ("$", "$"),
    ("a$", "a$"),
    ("$/", "$/"),
    ("${KOREAN}", "한국어"),
    ("hello $PWD", "hello /home"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    # ${variable:-word}: word when unset or empty
    ("${UNSET:-word}", "word"),
    ("${EMPTY:-word}", "word"),
    ("${FOO:-word}", "/bar"),
    # ${variable-word}: word only when unset
    ("${UNSET-word}", "word"),
    ("${EMPTY-word}", ""),
    # ${variable:+word}: word when set and not empty
    ("${FOO:+word}", "word"),
    ("${EMPTY:+word}", ""),
    ("${UNSET:+word}", ""),
    # ${variable+word}: word when set, even empty
    ("${EMPTY+word}", "word"),
    ("${UNSET+word}", ""),
    # the word may itself hold variables and quotes
    ("${UNSET:-$FOO}", "/bar"),
    ("${UNSET:-${FOO}/x}", "/bar/x"),
    ("${UNSET:-'a b'}", "a b"),
    ('${UNSET:-"$FOO"}', "/bar"),
    ("${FOO:+x\\}y}", "x}y"),
    # prefix and suffix removal, replacement (BuildKit extensions)
    ("${file#*/}", "sub/name.tar.gz"),
    ("${file##*/}", "name.tar.gz"),
    ("${file%.*}", "dir/sub/name.tar"),
    ("${file%%.*}", "dir/sub/name"),
    ("${file/sub/SUB}", "dir/SUB/name.tar.gz"),
    ("${file//a/A}", "dir/sub/nAme.tAr.gz"),
    ("${SP}", "a b"),
    ("${abc}_$abc", "hello_hello"),
    ("\\", ""),                         # a lone trailing escape is dropped
    ("a\\ b", "a b"),
]


@pytest.mark.parametrize(("word", "expected"), WORD_CASES)
def test_process_word(word, expected):
    assert Lexer().process_word(word, ENV) == expected


# (word, expected words) for the splitting variant (EXPOSE, heredoc detection)
WORDS_CASES = [
    ("a b  c", ["a", "b", "c"]),
    ("'a b' c", ["a b", "c"]),
    ('"a b"c d', ["a bc", "d"]),
    ("a\\ b c", ["a b", "c"]),
    ("$SP c", ["a", "b", "c"]),          # unquoted expansions are split
    ('"$SP" c', ["a b", "c"]),           # quoted ones are not
    ("  lead trail  ", ["lead", "trail"]),
    ('""', []),
]


@pytest.mark.parametrize(("word", "expected"), WORDS_CASES)
def test_process_words(word, expected):
    assert Lexer().process_words(word, ENV) == expected


@pytest.mark.parametrize(("word", "expected"), [
    ("a`$FOO", "a$FOO"),
    ("C:\\path\\$FOO", "C:\\path\\/bar"),
    ('"a`"b"', 'a"b'),
    ("a` b", "a b"),
])
def test_backtick_escape(word, expected):
    assert Lexer("`").process_word(word, ENV) == expected


@pytest.mark.parametrize(("word", "message"), [
    ("'unclosed", "unexpected end of statement while looking for matching single-quote"),
    ('"unclosed', "unexpected end of statement while looking for matching double-quote"),
    ("${FOO", "syntax error: missing '}'"),
    ("${FOO:-x", "syntax error: missing '}'"),
    ("${}", "syntax error: bad substitution"),
    ("${:x}", "syntax error: bad substitution"),
    ("${FOO:x}", "unsupported modifier (:x) in substitution"),
    ("${FOO^}", "unsupported modifier (^) in substitution"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${UNSET?custom message}", "UNSET: custom message"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
])
def test_errors(word, message):
    with pytest.raises(ExpansionError) as exc:
        Lexer().process_word(word, ENV)
    assert str(exc.value).endswith(message), str(exc.value)
    assert str(exc.value).startswith("failed to process")


def test_set_values_pass_question_mark():
    assert Lexer().process_word("${FOO?x}", ENV) == "/bar"
    assert Lexer().process_word("${EMPTY?x}", ENV) == ""


def test_matched_and_unset_names_are_reported():
    res = Lexer().process("$FOO ${UNSET} ${OTHER:-x}", ENV)
    assert res.matched == {"FOO"}
    assert res.unmatched == {"UNSET", "OTHER"}
    assert res.unset_plain == {"UNSET"}


def test_skip_unset_keeps_references():
    lx = Lexer(skip_unset=True)
    assert lx.process_word("$X ${Y} ${Z:-d} $FOO", ENV) == "$X ${Y} ${Z:-d} /bar"


def test_raw_quotes_and_escapes():
    assert Lexer(raw_quotes=True).process_word("'a' \"b\"", {}) == "'a' \"b\""
    assert Lexer(raw_escapes=True).process_word("a\\ b", {}) == "a\\ b"
    assert Lexer(skip_quotes=True).process_word("'$FOO'", ENV) == "'/bar'"
