"""The filter and query languages as pure logic: trees, types, errors with positions."""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.search import catalogue, paging, translate_dsl, translate_sql
from aiaudit.search.language import (
    And,
    Compare,
    Exists,
    LanguageError,
    Not,
    Or,
    Prefix,
    Text,
    combine,
    leaves,
    matched_texts,
    parse_filter,
    parse_order_by,
    parse_query,
)


def f(name: str) -> catalogue.Field:
    found = catalogue.lookup(name)
    assert found is not None
    return found


def test_comparisons_are_typed_into_indexed_values() -> None:
    node = parse_filter(
        'actor.user_id = "alice" AND occurred_time >= "2026-01-01T00:00:00.5Z" '
        "AND usage.output_tokens > 10 AND timing.latency < 1500ms AND event_type = interaction"
    )
    assert node == And(
        (
            Compare(f("actor.user_id"), "=", "alice", False),
            Compare(f("occurred_time"), ">=", 1767225600_500000, True),
            Compare(f("usage.output_tokens"), ">", 10, True),
            Compare(f("timing.latency"), "<", 1.5, True),
            Compare(f("event_type"), "=", "EVENT_TYPE_INTERACTION", False),
        )
    )


def test_or_binds_tighter_than_and_as_in_aip_160() -> None:
    a, b, c = (Compare(f("model.name"), "=", x, False) for x in "abc")
    assert parse_filter("model.name = a AND model.name = b OR model.name = c") == And(
        (a, Or((b, c)))
    )
    assert parse_filter("(model.name = a AND model.name = b) OR model.name = c") == Or(
        (And((a, b)), c)
    )
    assert parse_filter("model.name = a model.name = b") == And((a, b))


def test_has_presence_prefix_negation_and_families() -> None:
    assert parse_filter("safety_flags.category:*") == Exists(f("safety_flags.category"))
    assert parse_filter('model.name = "gpt-4*"') == Prefix(f("model.name"), "gpt-4")
    assert parse_filter("-model.name = x") == Not(Compare(f("model.name"), "=", "x", False))
    assert parse_filter("model.name != x") == Not(Compare(f("model.name"), "=", "x", False))
    rating = parse_filter("trust_signals.user_rating >= 4")
    assert isinstance(rating, Compare) and rating.numeric and rating.value == 4.0
    assert rating.field.multi and rating.field.kind is catalogue.Kind.DYNAMIC
    label = parse_filter('attributes.team = "red"')
    assert isinstance(label, Compare) and not label.numeric
    assert parse_filter('output.text:"credit card"') == Text(("output.text",), "credit card")
    assert parse_filter("usage.output_tokens:*") == Exists(f("usage.output_tokens"))
    assert parse_filter("timing.latency:*") == Exists(f("timing.latency"))


def test_query_terms_phrases_and_operators() -> None:
    every = ("input.text", "output.text", "tool_call.text")
    assert parse_query('refund "credit card" OR chargeback -test') == And(
        (
            Text(every, "refund"),
            Or((Text(every, "credit card"), Text(every, "chargeback"))),
            Not(Text(every, "test")),
        )
    )


EVERY_TEXT = ("input.text", "output.text", "tool_call.text")


def test_a_minus_before_a_query_term_negates_it_whatever_follows() -> None:
    """``refund -404`` was ``refund AND "404"``: a minus before a digit kept the term."""
    assert parse_query("refund -404") == And(
        (Text(EVERY_TEXT, "refund"), Not(Text(EVERY_TEXT, "404")))
    )
    assert parse_query("-2fa") == parse_query("NOT 2fa") == Not(Text(EVERY_TEXT, "2fa"))
    assert parse_query("-0.5") == Not(Text(EVERY_TEXT, "0.5"))
    # Inside a word a minus is the word's, in either language.
    assert parse_query("e-mail gpt-4o 2-3") == And(
        (Text(EVERY_TEXT, "e-mail"), Text(EVERY_TEXT, "gpt-4o"), Text(EVERY_TEXT, "2-3"))
    )
    assert parse_filter("model.name = gpt-4o") == Compare(f("model.name"), "=", "gpt-4o", False)
    # In a filter a minus before a digit is still a negative number.
    x = f("attributes.x")
    assert parse_filter("attributes.x = -5") == Compare(x, "=", -5, True)
    assert parse_filter("-attributes.x > -5") == Not(Compare(x, ">", -5, True))
    with pytest.raises(LanguageError, match="nothing searchable"):
        parse_query("refund - 404")


def test_an_apostrophe_inside_a_query_term_is_part_of_it() -> None:
    """``O'Brien's`` was ``O AND "Brien" AND s``, and ``O'Brien`` an unterminated string."""
    for term in ("O'Brien's", "O'Brien", "don't", "users'"):
        assert parse_query(term) == Text(EVERY_TEXT, term), term
        assert parse_query(term) == parse_query(f'"{term}"'), term
    assert parse_query("it's -O'Brien") == And(
        (Text(EVERY_TEXT, "it's"), Not(Text(EVERY_TEXT, "O'Brien")))
    )
    # Where a token starts a quote still opens a string, of either kind.
    assert parse_query("'credit card' it's \"a b\"") == And(
        (Text(EVERY_TEXT, "credit card"), Text(EVERY_TEXT, "it's"), Text(EVERY_TEXT, "a b"))
    )
    assert parse_query('say"hi there"') == And(
        (Text(EVERY_TEXT, "say"), Text(EVERY_TEXT, "hi there"))
    )
    with pytest.raises(LanguageError, match="unterminated string") as caught:
        parse_query("refund 'tis")
    assert caught.value.position == 7
    # A filter's unquoted value still ends at a quote (an apostrophe is no value).
    assert parse_filter('actor.user_id = "O\'Brien"') == Compare(
        f("actor.user_id"), "=", "O'Brien", False
    )


@pytest.mark.parametrize("space", ["\u3000", "\u00a0", "\u2003", "\u202f", "\x85"])
def test_a_word_ends_at_every_space_the_lexer_skips(space: str) -> None:
    """Spaces between tokens were any Unicode space, the end of a word only an ASCII one:
    ``refund<U+3000>-order`` (an ideographic space, as CJK input methods type it) was the
    phrase "refund order", the opposite of its NOT, and an unquoted filter value ran on
    over a no-break space into the ``OR`` after it (both found nothing at all)."""
    assert parse_query(f"refund{space}-order") == And(
        (Text(EVERY_TEXT, "refund"), Not(Text(EVERY_TEXT, "order")))
    )
    assert parse_query(f"refund{space}order") == And(
        (Text(EVERY_TEXT, "refund"), Text(EVERY_TEXT, "order"))
    )
    user = f("actor.user_id")
    assert parse_filter(f"actor.user_id = alice{space}OR actor.user_id = bob") == Or(
        (Compare(user, "=", "alice", False), Compare(user, "=", "bob", False))
    )
    # Inside quotes a space is part of the value, as ever.
    assert parse_query(f'"refund{space}order"') == Text(EVERY_TEXT, f"refund{space}order")


def test_a_word_with_an_apostrophe_also_matches_the_tokens_going_on_from_it() -> None:
    """OpenSearch's standard analyzer keeps ``o'brien's`` one token: ``O'Brien`` (a phrase
    query of ``o'brien``) missed it there, where FTS5 reads ``o brien s`` and found it.
    Only a lone word with an apostrophe gets the prefix; two words stay a phrase."""
    columns = ["input__text", "output__text", "tool_call__text"]

    def phrase(text: str) -> dict[str, object]:
        return {"multi_match": {"query": text, "type": "phrase", "fields": columns}}

    for word, prefix in (
        ("O'Brien", "o'brien'"),
        ("\u2018L\u2019ÉTÉ\u2019", "l\u2019été\u2019"),  # typographic quotes
        ("don't.", "don't'"),
        ("İ'X", "i'x'"),  # Java lower-cases U+0130 to i, Python to i and a dot above
    ):
        node = Text(EVERY_TEXT, word)
        assert translate_dsl.text_query(node) == {
            "bool": {
                "should": [phrase(word), *({"prefix": {c: {"value": prefix}}} for c in columns)],
                "minimum_should_match": 1,
            }
        }, word
    for text in ("refund", "users'", "O'Brien team", "x.O'Brien", "O''Brien", "'"):
        assert translate_dsl.text_query(Text(EVERY_TEXT, text)) == phrase(text), text
    assert translate_dsl.query(parse_query("O'Brien OR refund")) == {
        "bool": {
            "should": [
                translate_dsl.text_query(Text(EVERY_TEXT, "O'Brien")),
                phrase("refund"),
            ],
            "minimum_should_match": 1,
        }
    }


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize(
    "literal",
    ["10.0000000000000001", "1e-999", "-1e-400", "9007199254740993.5", "0.11000000000000000001e2"],
)
def test_an_integer_field_refuses_every_literal_that_is_no_integer(op: str, literal: str) -> None:
    """Decided on the double nearest the literal, ``= 10.0000000000000001`` found 10,
    ``< 10.0000000000000001`` missed it and ``= 1e-999`` found 0."""
    text = f"usage.input_tokens {op} {literal}"
    with pytest.raises(LanguageError) as caught:
        parse_filter(text)
    assert caught.value.detail == f"'usage.input_tokens' is an integer; {literal!r} is not"
    assert caught.value.position == text.index(literal)


def test_an_integer_field_takes_every_literal_that_writes_an_integer_exactly() -> None:
    """``9007199254740993.0`` was the double nearest it, 9007199254740992."""
    tokens = f("usage.input_tokens")
    for literal, value in (
        ("10.0", 10),
        ("1e3", 1000),
        ("1.5e1", 15),
        ("-0.0", 0),
        ("0e999999999", 0),
        ("9007199254740993.0", 2**53 + 1),
        ("9.007199254740993e15", 2**53 + 1),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808.000", -(2**63)),
    ):
        found = parse_filter(f"usage.input_tokens <= {literal}")
        assert found == Compare(tokens, "<=", value, True), literal
        assert isinstance(found, Compare) and type(found.value) is int, literal
    for literal in ("9223372036854775808", "9.3e18", "-9223372036854775809.0"):
        with pytest.raises(LanguageError, match="outside the 64-bit integer range"):
            parse_filter(f"usage.input_tokens = {literal}")


def test_true_unquoted_is_the_boolean_quoted_the_text() -> None:
    """Both were the text "true" (lower-cased), so either found booleans and texts alike."""
    k = f("attributes.k")
    for written in ("true", "TRUE", "True"):
        found = parse_filter(f"attributes.k = {written}")
        assert found == Compare(k, "=", True, False)
        assert isinstance(found, Compare) and found.boolean and found.value is True
    assert parse_filter("attributes.k != false") == Not(Compare(k, "=", False, False))
    text = parse_filter('attributes.k = "true"')
    assert isinstance(text, Compare) and not text.boolean and text.value == "true"
    upper = parse_filter('attributes.k = "TRUE"')
    assert isinstance(upper, Compare) and upper.value == "TRUE"
    blocked = parse_filter('safety_flags.blocked = "TRUE"')
    assert isinstance(blocked, Compare) and blocked.boolean and blocked.value is True
    with pytest.raises(LanguageError, match="is a boolean"):
        parse_filter("attributes.k > true")
    params: list[object] = []
    assert "bool = ?" in translate_sql.where(parse_filter("attributes.k = true"), params)
    assert params == ["attributes.k", True]


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("(model.name = a", 1, "never closed"),
        ("model.name = a)", 15, "')' without '('"),
        ("nosuch.field = 1", 1, "unknown field 'nosuch.field'"),
        ("usage.output_tokens = ten", 23, "is a number"),
        ("usage.output_tokens = 1.5", 23, "is an integer"),
        ("usage.output_tokens < 10.0000000000000001", 23, "is an integer"),
        ("usage.output_tokens = 1e-999", 23, "is an integer"),
        ('model.name > "a"', 12, "compares text"),
        ("event_type = BOGUS", 14, "not a value of 'event_type'"),
        ('occurred_time > "yesterday"', 17, "not an RFC 3339 timestamp"),
        ('occurred_time > "2026-01-01T00:00:00"', 17, "needs a time zone"),
        ("timing.latency > 3", 18, "with a unit"),
        ('model.name = "unterminated', 14, "unterminated string"),
        ("model.name =", 13, "expected a value"),
        ("model.name", 11, "expected an operator"),
        ("AND model.name = a", 1, "unexpected 'AND'"),
        ("model.name = a OR", 18, "ends too early"),
        ("model.name = a AND )", 20, "unbalanced parenthesis: ')' without '('"),
        ('"model.name" = a', 1, "expected a field name"),
        ('output.text = "x"', 13, "takes only ':'"),
        ("usage.cost > 1e999", 14, "is not a finite number"),
        ("event_type > interaction", 12, "is an enum: use =, != or :"),
        ("timing.latency > " + "1" * 25 + "ns", 18, "is out of range"),
        ("()", 2, "empty parentheses"),
        ("model.name = a; DROP TABLE docs", 17, "unknown field 'DROP'"),
        ("usage.cost > nan", 14, "is a number"),
        ("safety_flags.blocked = maybe", 24, "is a boolean"),
        ('model.name = "a*b*"', 14, "only a trailing '*'"),
        ('occurred_time >= "2026-03-01T13:00:00.0000005Z"', 18, "finer than a microsecond"),
        ('occurred_time >= "2026-W09-1"', 18, "not an RFC 3339 timestamp"),
        ('occurred_time >= "20260301T120000Z"', 18, "not an RFC 3339 timestamp"),
        ("timing.latency > 1.5ns", 18, "finer than a nanosecond"),
        ('model.name = "a\x00b"', 16, "contains U+0000 (NUL)"),
        # Valid RFC 3339 whose instant is past year 9999 or before year 1 in UTC: an
        # OverflowError in the conversion, answered UNKNOWN until 2026-12-05.
        ('occurred_time < "9999-12-31T23:59:59-23:59"', 17, "out of range"),
        ('receive_time > "0001-01-01T00:00:00+00:01"', 16, "out of range"),
    ],
)
def test_bad_filters_name_the_position(text: str, column: int, fragment: str) -> None:
    with pytest.raises(LanguageError) as caught:
        parse_filter(text)
    assert caught.value.field == "filter"
    assert fragment in caught.value.detail
    assert caught.value.position + 1 == column, caught.value


def test_limits_refuse_huge_and_deep_input() -> None:
    with pytest.raises(LanguageError, match="longer than"):
        parse_filter("model.name = a AND " * 1000)
    with pytest.raises(LanguageError, match="nested deeper"):
        parse_filter("(" * 100 + "model.name = a" + ")" * 100)
    with pytest.raises(LanguageError, match="more than 256"):
        parse_filter(" OR ".join(["model.name = a"] * 300))
    with pytest.raises(LanguageError, match="nothing searchable"):
        parse_query('"***"')


def test_a_number_in_an_attribute_keeps_the_integer_it_writes() -> None:
    """Entries hold int64s and doubles: past 2**53 the nearest double is another integer."""
    x = f("attributes.x")
    exact = parse_filter("attributes.x = 1234567890123456789")
    assert exact == Compare(x, "=", 1234567890123456789, True)
    assert type(exact.value) is int  # type: ignore[union-attr]
    assert parse_filter("attributes.x = 1.5") == Compare(x, "=", 1.5, True)
    for end in (2**63 - 1, -(2**63)):
        kept = parse_filter(f"attributes.x = {end}")
        assert kept == Compare(x, "=", end, True) and type(kept.value) is int  # type: ignore[union-attr]
    past = parse_filter(f"attributes.x = {2**63}")
    assert past == Compare(x, "=", float(2**63), True) and type(past.value) is float  # type: ignore[union-attr]
    huge = parse_filter("attributes.x = 1e30")  # past int64: the double
    assert huge == Compare(x, "=", 1e30, True) and type(huge.value) is float  # type: ignore[union-attr]


def test_empty_input_is_no_tree_and_every_bound_holds_at_its_edge() -> None:
    assert parse_filter("") is None and parse_filter("  ") is None and parse_query(" ") is None
    latency = parse_filter("timing.latency > " + "1" * 24 + "ns")  # 24 digits: still taken
    assert isinstance(latency, Compare) and latency.value == 111111111111111.11
    with pytest.raises(LanguageError, match="'occurred_time' appears twice"):
        parse_order_by("occurred_time, occurred_time")


def test_colon_is_equals_and_order_needs_an_ordered_field() -> None:
    assert parse_filter("model.name:gpt-4o") == Compare(f("model.name"), "=", "gpt-4o", False)
    for op in ("<", "<=", ">", ">="):
        with pytest.raises(LanguageError, match="compares text: use =, != or :"):
            parse_filter(f"model.name {op} a")
        with pytest.raises(LanguageError, match="is an enum"):
            parse_filter(f"event_type {op} interaction")
    with pytest.raises(LanguageError, match="unterminated string"):
        parse_filter('model.name = "abc\\')  # a backslash escapes nothing at the end


def test_leaves_and_combine_read_and_join_trees() -> None:
    """What the handlers audit (the fields a search names) and how filter and query join."""
    a, b, c = (Compare(f("model.name"), "=", x, False) for x in "abc")
    tree = parse_filter("model.name = a (NOT model.name = b OR model.name = c)")
    assert leaves(tree) == [a, b, c]
    assert leaves(None) == []
    assert combine() is None and combine(None, None) is None
    assert combine(None, a, None) == a
    assert combine(a, None, tree) == And((a, tree))


def test_a_lone_minus_at_the_end_of_a_query_is_a_language_error() -> None:
    """At the end of the text there is nothing after ``-`` to look at (no IndexError)."""
    for text in ("refund -", "-"):
        with pytest.raises(LanguageError, match="nothing searchable"):
            parse_query(text)


def test_highlights_take_the_phrases_a_match_holds_not_those_it_must_not() -> None:
    phrases = matched_texts(parse_query("refund OR NOT password -secret NOT NOT kept"))
    assert [t.phrase for t in phrases] == ["refund", "kept"]


def test_limits_are_the_documented_numbers_exactly() -> None:
    """The README's limits, each at its bound and one past it (the constants are not trusted)."""
    leaf = "model.name = a"
    cases = [
        (parse_filter, leaf + " " * (8192 - len(leaf)), "longer than 8192 characters"),
        (parse_filter, "(" * 16 + leaf + ")" * 16, "nested deeper than 16 levels"),
        (parse_filter, "NOT " * 16 + leaf, "nested deeper than 16 levels"),
        (parse_query, "-" * 16 + "refund", "nested deeper than 16 levels"),
        (parse_filter, " OR ".join([leaf] * 256), "more than 256 comparisons or terms"),
        (parse_query, " ".join(["refund"] * 256), "more than 256 comparisons or terms"),
        (parse_filter, 'model.name = "' + "a" * 4096 + '"', "string longer than 4096"),
        (parse_query, "a" * 4096, "term longer than 4096"),
    ]
    for parse, at_bound, _ in cases:
        assert parse(at_bound) is not None, at_bound[:40]
    past = [
        leaf + " " * (8193 - len(leaf)),
        "(" * 17 + leaf + ")" * 17,
        "NOT " * 17 + leaf,
        "-" * 17 + "refund",
        " OR ".join([leaf] * 257),
        " ".join(["refund"] * 257),
        'model.name = "' + "a" * 4097 + '"',
        "a" * 4097,
    ]
    for (parse, _, refusal), text in zip(cases, past, strict=True):
        with pytest.raises(LanguageError, match=refusal):
            parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_garbage_either_parses_or_raises_language_error(text: str) -> None:
    for parse in (parse_filter, parse_query):
        try:
            parse(text)
        except LanguageError as exc:
            assert 0 <= exc.position <= len(text)


def test_order_by_always_ends_with_sequence() -> None:
    keys = parse_order_by("occurred_time desc")
    assert [(k.field.name, k.descending) for k in keys] == [
        ("occurred_time", True),
        ("sequence", True),
    ]
    assert [k.field.name for k in parse_order_by("receive_time, sequence desc")] == [
        "receive_time",
        "sequence",
    ]
    for bad, column in (("model.name", 1), ("occurred_time up", 1), ("sequence, x", 11)):
        with pytest.raises(LanguageError) as caught:
            parse_order_by(bad)
        assert caught.value.position + 1 == column
    # A key after ``sequence`` is named where it is (it was column 1 whatever came first).
    for bad, column in (
        ("occurred_time, sequence, receive_time", 26),
        ("sequence, receive_time", 11),
    ):
        with pytest.raises(LanguageError, match="'sequence' must be the last key") as caught:
            parse_order_by(bad)
        assert caught.value.position + 1 == column, bad


def test_sql_binds_every_value_and_fts_strings_are_inert() -> None:
    node = parse_filter('actor.user_id = "x\' OR 1=1 --" AND NOT model.name = a')
    assert node is not None
    params: list[object] = []
    sql = translate_sql.where(node, params)
    assert "OR 1=1" not in sql and params == ["x' OR 1=1 --", "a"]
    assert "COALESCE(d.model__name = ?, 0)" in sql  # missing values count as not equal
    query = parse_query(r'"say \"hi\" OR x" NEAR:x')
    assert query is not None
    params = []
    translate_sql.where(query, params)
    assert params == [
        '{input__text output__text tool_call__text} : "say ""hi"" OR x"',
        '{input__text output__text tool_call__text} : "NEAR:x"',
    ]


def test_dsl_uses_nested_entries_for_multi_valued_fields() -> None:
    node = parse_filter("safety_flags.score > 0.5 AND model.name = m")
    assert node is not None
    assert translate_dsl.query(node) == {
        "bool": {
            "filter": [
                {
                    "nested": {
                        "path": "entries",
                        "query": {
                            "bool": {
                                "filter": [
                                    {"term": {"entries.field": "safety_flags.score"}},
                                    {"range": {"entries.num": {"gt": 0.5}}},
                                ]
                            }
                        },
                    }
                },
                {"term": {"model__name": "m"}},
            ]
        }
    }


def test_page_tokens_are_bound_to_the_request() -> None:
    bound = paging.digest("t1", "f", "", "")
    token = paging.encode(bound, (5, 7))
    assert paging.decode(token, bound, 2) == (5, 7)
    with pytest.raises(paging.TokenError, match="different"):
        paging.decode(token, paging.digest("t2", "f", "", ""), 2)
    for garbage in ("!!", "e30", paging.encode(bound, (1,)), token[:-3]):
        with pytest.raises(paging.TokenError):
            paging.decode(garbage, bound, 2)
    with pytest.raises(ValueError):
        paging.page_size(1001)
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE


def test_page_sizes_and_token_values_hold_at_their_bounds() -> None:
    assert [paging.page_size(n) for n in (0, 1, 1000)] == [50, 1, 1000]
    assert [paging.groups_page_size(n) for n in (0, 1, 10_000)] == [0, 1, 10_000]
    for size in (paging.page_size, paging.groups_page_size):
        for bad in (-1, 10_001):
            with pytest.raises(ValueError, match="must be between 0 and"):
                size(bad)
    with pytest.raises(ValueError):
        paging.page_size(1001)
    bound = paging.digest("t1", "f", "", "")
    ends = (-(2**63), 2**63 - 1)
    assert paging.decode(paging.encode(bound, ends), bound, 2) == ends
    for past in ((-(2**63) - 1, 0), (0, 2**63), (True, 0)):
        with pytest.raises(paging.TokenError, match="not a token this service issued"):
            paging.decode(paging.encode(bound, past), bound, 2)


def _forged(*items: object) -> str:
    """A token as a client could write one: base64 of any JSON."""
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).decode().rstrip("=")


def test_aggregate_tokens_are_bound_and_hold_only_a_snapshot_and_texts() -> None:
    bound = paging.digest("t1", "caller", "f", "", "model.name")
    keys = ("gpt-4o", None, "\u00e9\U0001f600")
    token = paging.encode_groups(bound, 42, keys)
    assert paging.decode_groups(token, bound, 3) == (42, keys)
    for worst in (("\x01" * 1000,), ("\x01" * 500, "\U0001f600" * 500)):  # 6 bytes of JSON
        token_room = paging.groups_token_room(worst)
        assert len(paging.encode_groups(bound, 2**63 - 1, worst)) <= token_room
    with pytest.raises(paging.TokenError, match="belongs to a different tenant, caller"):
        paging.decode_groups(token, paging.digest("t2", "caller", "f", "", "model.name"), 3)
    refused = [
        paging.encode(bound, (1, 2, 3)),  # a search's token (version 1)
        paging.encode_groups(bound, -1, keys),
        paging.encode_groups(bound, 2**63, keys),
        paging.encode_groups(bound, True, keys),  # type: ignore[arg-type]
        paging.encode_groups(bound, 42, ("a", 1, None)),  # type: ignore[arg-type]
        _forged(2, bound, 42, ["a", "\ud800", None]),  # a lone surrogate, as JSON escapes it
        paging.encode_groups(bound, 42, ("a", None)),
        token[:-3],
    ]
    for garbage in refused:
        with pytest.raises(paging.TokenError, match="not a token this service issued"):
            paging.decode_groups(garbage, bound, 3)
    with pytest.raises(paging.TokenError, match="not a token this service issued"):
        paging.decode_groups(paging.encode_groups(bound, 42, ()), bound, 0)
    with pytest.raises(paging.TokenError, match="not a token this service issued"):
        paging.decode(token, bound, 3)  # an aggregate's token (version 2) for a search


def test_minus_zero_is_zero_and_durations_are_exact() -> None:
    """OpenSearch tells -0.0 from 0.0 apart (an event at 0 missed `= -0`); 700ms parsed to
    0.7000000000000001 s, beside the indexed 0.7 (seconds + nanos / 1e9)."""
    zero = parse_filter("model.temperature = -0")
    assert isinstance(zero, Compare) and math.copysign(1.0, zero.value) == 1.0
    for text, seconds in (
        ("700ms", 0.7),
        ("1.1s", 1.1),
        ("90m", 5400.0),
        ("2h", 7200.0),
        ("300us", 0.0003),
        ("3000ns", 0.000003),
    ):
        node = parse_filter(f"timing.latency = {text}")
        assert isinstance(node, Compare) and node.value == seconds, text
    exact = parse_filter('occurred_time >= "2026-03-01T13:00:00.123456000Z"')
    assert isinstance(exact, Compare) and exact.value % 1_000_000 == 123456


def test_a_duration_past_any_event_is_out_of_range_not_an_overflow() -> None:
    with pytest.raises(LanguageError, match="out of range"):
        parse_filter("timing.latency > 1" + "0" * 400 + "s")


def test_timestamps_take_the_lowercase_t_and_z_rfc_3339_allows() -> None:
    """RFC 3339 section 5.6: "T" and "Z" may be lower case; such a filter was refused."""
    upper = parse_filter('occurred_time >= "2026-03-01T13:00:00.25Z"')
    for text in (
        "2026-03-01t13:00:00.25z",
        "2026-03-01t13:00:00.25Z",
        "2026-03-01t14:00:00.25+01:00",
    ):
        lower = parse_filter(f'occurred_time >= "{text}"')
        assert isinstance(upper, Compare) and isinstance(lower, Compare)
        assert lower.value == upper.value == 1772370000250000, text
