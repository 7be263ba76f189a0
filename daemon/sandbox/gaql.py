"""A parser for the Google Ads Query Language, enough for reporting queries.

    SELECT f1, f2 FROM resource
    [WHERE cond AND cond ...] [ORDER BY f [ASC|DESC], ...] [LIMIT n] [PARAMETERS k = v]

Conditions: `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN (..)`, `NOT IN (..)`, `LIKE`, `NOT LIKE`,
`IS NULL`, `IS NOT NULL`, `DURING CONSTANT`, `BETWEEN a AND b`, `REGEXP_MATCH`,
`NOT REGEXP_MATCH`, `CONTAINS ANY|ALL|NONE (..)`. GAQL has no OR and no parentheses
around conditions. Syntax errors raise `GaqlError` with a `QueryError` enum name, as the
API reports them.
"""

from __future__ import annotations

import re

import attrs

Literal = str | int | float


class GaqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen
class Token:
    kind: str  # ident | string | number | op | punct | end
    text: str
    value: Literal
    position: int


@attrs.frozen
class Condition:
    field: str
    operator: str  # upper case, e.g. "=", "NOT IN", "DURING", "BETWEEN", "IS NULL"
    values: tuple[Literal, ...]


@attrs.frozen
class Ordering:
    field: str
    descending: bool


@attrs.frozen
class Query:
    fields: tuple[str, ...]
    resource: str
    conditions: tuple[Condition, ...]
    order_by: tuple[Ordering, ...]
    limit: int | None
    parameters: tuple[tuple[str, str], ...]


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_FIELD = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_RESOURCE = re.compile(r"[a-z][a-z0-9_]*")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "'\"":
                raise GaqlError("STRING_NOT_TERMINATED", f"Error in query: unterminated string at {pos}.")
            raise GaqlError("BAD_SYMBOL", f"Error in query: unexpected character {text[pos]!r} at {pos}.")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "string":
            value: Literal = re.sub(r"\\(.)", r"\1", raw[1:-1])
            tokens.append(Token(kind, raw, value, pos))
        elif kind == "number":
            tokens.append(Token(kind, raw, float(raw) if "." in raw else int(raw), pos))
        elif kind != "space":
            tokens.append(Token(kind, raw, raw, pos))
        pos = m.end()
    tokens.append(Token("end", "", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "ident" and self.current.text.upper() in words

    def expect_keyword(self, word: str, code: str) -> None:
        if not self.at_keyword(word):
            self.fail_unexpected(code, f"expected {word}")
        self.advance()

    def fail_unexpected(self, code: str, what: str) -> None:
        token = self.current
        if token.kind == "end":
            raise GaqlError("UNEXPECTED_END_OF_QUERY", f"Error in query: unexpected end of query ({what}).")
        raise GaqlError(code, f"Error in query: {what}, found {token.text!r} at {token.position}.")

    def field(self, clause: str) -> str:
        token = self.current
        if token.kind != "ident" or not _FIELD.fullmatch(token.text):
            self.fail_unexpected("BAD_FIELD_NAME", f"expected a field name in the {clause} clause")
        self.advance()
        return token.text

    def parse(self) -> Query:
        self.expect_keyword("SELECT", "EXPECTED_SELECT")
        fields = [self.field("SELECT")]
        while self.current.text == ",":
            self.advance()
            fields.append(self.field("SELECT"))
        if len(set(fields)) != len(fields):
            raise GaqlError(
                "DUPLICATE_FIELDS_IN_SELECT_CLAUSE",
                "Error in SELECT clause: a field is selected more than once.",
            )
        self.expect_keyword("FROM", "EXPECTED_FROM")
        token = self.current
        if token.kind != "ident" or not _RESOURCE.fullmatch(token.text):
            self.fail_unexpected("BAD_RESOURCE_TYPE_IN_FROM_CLAUSE", "expected a resource name")
        resource = self.advance().text
        conditions: list[Condition] = []
        if self.at_keyword("WHERE"):
            self.advance()
            conditions.append(self.condition())
            while self.at_keyword("AND"):
                self.advance()
                conditions.append(self.condition())
        order_by: list[Ordering] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY", "EXPECTED_BY")
            order_by.append(self.ordering())
            while self.current.text == ",":
                self.advance()
                order_by.append(self.ordering())
        limit = None
        if self.at_keyword("LIMIT"):
            self.advance()
            token = self.current
            if token.kind != "number" or not isinstance(token.value, int):
                self.fail_unexpected("BAD_LIMIT_VALUE", "expected an integer LIMIT")
            limit = int(self.advance().value)
            if limit <= 0:
                raise GaqlError("LIMIT_VALUE_TOO_LOW", "Error in LIMIT clause: the limit must be positive.")
        parameters: list[tuple[str, str]] = []
        if self.at_keyword("PARAMETERS"):
            self.advance()
            parameters.append(self.parameter())
            while self.current.text == ",":
                self.advance()
                parameters.append(self.parameter())
        if self.current.kind != "end":
            self.fail_unexpected("UNEXPECTED_INPUT", "expected end of query")
        return Query(tuple(fields), resource, tuple(conditions), tuple(order_by), limit, tuple(parameters))

    def ordering(self) -> Ordering:
        field = self.field("ORDER BY")
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        return Ordering(field, descending)

    def parameter(self) -> tuple[str, str]:
        token = self.current
        if token.kind != "ident":
            self.fail_unexpected("BAD_PARAMETER_NAME", "expected a parameter name")
        name = self.advance().text
        if self.current.text != "=":
            self.fail_unexpected("BAD_OPERATOR", "expected '=' after the parameter name")
        self.advance()
        token = self.current
        if token.kind not in ("ident", "string", "number"):
            self.fail_unexpected("BAD_PARAMETER_VALUE", "expected a parameter value")
        return name, str(self.advance().value)

    def value(self) -> Literal:
        token = self.current
        if token.kind not in ("string", "number", "ident"):
            self.fail_unexpected("BAD_VALUE", "expected a value")
        if token.kind == "ident" and token.text.upper() in ("AND", "ORDER", "LIMIT", "PARAMETERS"):
            self.fail_unexpected("BAD_VALUE", "expected a value")
        return self.advance().value

    def value_list(self) -> tuple[Literal, ...]:
        if self.current.text != "(":
            self.fail_unexpected("EXPECTED_LIST", "expected a parenthesised list")
        self.advance()
        if self.current.text == ")":
            raise GaqlError("PROHIBITED_EMPTY_LIST_IN_CONDITION", "Error in WHERE clause: empty list.")
        values = [self.value()]
        while self.current.text == ",":
            self.advance()
            values.append(self.value())
        if self.current.text != ")":
            self.fail_unexpected("EXPECTED_LIST", "expected ')' to close the list")
        self.advance()
        return tuple(values)

    def condition(self) -> Condition:
        field = self.field("WHERE")
        token = self.current
        if token.kind == "op":
            self.advance()
            return Condition(field, token.text, (self.value(),))
        if token.kind != "ident":
            self.fail_unexpected("BAD_OPERATOR", "expected an operator")
        word = self.advance().text.upper()
        if word == "NOT":
            if not self.at_keyword("IN", "LIKE", "REGEXP_MATCH"):
                self.fail_unexpected("BAD_OPERATOR", "expected IN, LIKE or REGEXP_MATCH after NOT")
            word = "NOT " + self.advance().text.upper()
        match word:
            case "IN" | "NOT IN":
                return Condition(field, word, self.value_list())
            case "LIKE" | "NOT LIKE" | "REGEXP_MATCH" | "NOT REGEXP_MATCH":
                if self.current.kind != "string":
                    self.fail_unexpected(
                        "INVALID_VALUE_WITH_LIKE_OPERATOR", f"expected a string after {word}"
                    )
                return Condition(field, word, (self.advance().value,))
            case "IS":
                negated = self.at_keyword("NOT")
                if negated:
                    self.advance()
                self.expect_keyword("NULL", "EXPECTED_VALUE")
                return Condition(field, "IS NOT NULL" if negated else "IS NULL", ())
            case "DURING":
                if self.current.kind != "ident":
                    self.fail_unexpected(
                        "INVALID_VALUE_WITH_DURING_OPERATOR", "expected a date range constant"
                    )
                return Condition(field, word, (self.advance().text,))
            case "BETWEEN":
                low = self.value()
                if not self.at_keyword("AND"):
                    self.fail_unexpected("EXPECTED_AND", "expected AND in BETWEEN")
                self.advance()
                return Condition(field, word, (low, self.value()))
            case "CONTAINS":
                if not self.at_keyword("ANY", "ALL", "NONE"):
                    self.fail_unexpected("BAD_OPERATOR", "expected ANY, ALL or NONE after CONTAINS")
                word = "CONTAINS " + self.advance().text.upper()
                return Condition(field, word, self.value_list())
        raise GaqlError("BAD_OPERATOR", f"Error in WHERE clause: unknown operator {word!r}.")


def parse(text: str) -> Query:
    """Parse a GAQL query; raise GaqlError for anything the API would reject as syntax."""
    if not text.strip():
        raise GaqlError("UNEXPECTED_END_OF_QUERY", "Error in query: the query is empty.")
    return _Parser(text).parse()
