"""Which values of each catalogued table a statement can use, read from its WHERE clauses.

DuckDB parses the statement (`json_serialize_sql`), so what is read is exactly what DuckDB
will run. Every place a catalogued table is read is an occurrence; one view serves them
all, so a table is pruned only if every occurrence is constrained, and then by the union
of what they need. An occurrence is constrained by the top-level AND-ed conjuncts of the
WHERE of the SELECT whose FROM reads it directly, when a conjunct compares one of its
columns with a constant (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`) and the column
provably binds to it: unqualified in a single-table FROM, or qualified by its alias or
name in a join tree of plain inner and outer joins (every such comparison rejects NULL,
so a row an outer join pads is filtered either way). Anything else prunes nothing:
table functions, samples, time travel, column renames, ASOF/POSITIONAL joins, constants
that are not constant (`now()`, `current_date`, `random()`, subqueries), floating-point
columns (NaN sorts above every number in DuckDB but is absent from Parquet statistics),
and comparisons whose types would cast the column to another family (a string column
against a date) since such casts do not keep order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse.catalog import Catalog, TableSpec

Node = dict[str, Any]
Resolver = Callable[[Node], str | None]

_COMPARISONS = {
    "COMPARE_EQUAL": ("=", "="),
    "COMPARE_LESSTHAN": ("<", ">"),
    "COMPARE_LESSTHANOREQUALTO": ("<=", ">="),
    "COMPARE_GREATERTHAN": (">", "<"),
    "COMPARE_GREATERTHANOREQUALTO": (">=", "<="),
}
_JOIN_TYPES = {"INNER", "LEFT", "RIGHT", "OUTER"}
_JOIN_REFS = {"REGULAR", "CROSS", "NATURAL"}
# Deterministic functions allowed inside a constant: arithmetic and INTERVAL's parts.
_CONSTANT_FUNCTIONS = {"+", "-", "*", "/", "trunc"} | {
    f"to_{unit}"
    for unit in (
        "years",
        "months",
        "weeks",
        "days",
        "hours",
        "minutes",
        "seconds",
        "milliseconds",
        "microseconds",
    )
}
_NUMBER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
}


@dataclass(frozen=True)
class Bound:
    """One conjunct on one column: `column op values`, each value DuckDB SQL text of a
    constant; `op` is one of = < <= > >= between in."""

    column: str
    op: str
    values: tuple[str, ...]

    def describe(self) -> str:
        """The conjunct as SQL, for `lakehouse query --explain-files`."""
        if self.op == "between":
            return f"{self.column} BETWEEN {self.values[0]} AND {self.values[1]}"
        if self.op == "in":
            return f"{self.column} IN ({', '.join(self.values)})"
        return f"{self.column} {self.op} {self.values[0]}"


Conjunction = tuple[Bound, ...]


@dataclass(frozen=True)
class StatementFilters:
    """The catalogued tables (keys) a statement reads, and for those that can be pruned,
    one conjunction per occurrence: a file is needed if it may match any of them.

    `only_these`: whether `tables` is provably every table the statement can read (one
    parsed SELECT, no table function, no string naming a catalogued table), so views of
    the others need not be made at all.
    """

    tables: frozenset[str]
    bounds: dict[str, tuple[Conjunction, ...]]
    only_these: bool = False


@dataclass
class _Atom:
    """A conjunct before its constants are checked: raw parse nodes."""

    column: str
    op: str
    values: list[Node]


def table_filters(
    connection: duckdb.DuckDBPyConnection, sql: str, catalog: Catalog
) -> StatementFilters:
    """What `sql` needs of each catalogued table it reads. A table gets no bounds when any
    occurrence is unconstrained, when the statement is not one SELECT, or when anything
    cannot be proven safe. Runs in the connection that will run `sql`, so constants are
    typed and cast under the same settings (the UTC time zone)."""
    tree = _parse(connection, sql)
    if tree is None:
        return StatementFilters(frozenset(), {})
    specs = {(spec.layer.value, spec.name): spec for spec in catalog.tables.values()}
    occurrences = {id(node): spec for node in _walk(tree) if (spec := _catalogued(node, specs))}
    tables = frozenset(spec.key for spec in occurrences.values())
    if any(node.get("type") == "TABLE_FUNCTION" for node in _walk(tree)):
        return StatementFilters(tables, {})
    texts = _strings(tree)
    named_in_text = any(
        spec.name in text for text in texts for spec in catalog.tables.values()
    )
    atoms: dict[int, list[_Atom]] = {}
    for node in _walk(tree):
        if node.get("type") == "SELECT_NODE":
            atoms.update(_select_atoms(node, occurrences))
    by_table: dict[str, list[list[_Atom]]] = {}
    for node_id, spec in occurrences.items():
        if any(spec.name in text for text in texts):  # query('... silver.x ...') and the like
            by_table[spec.key] = [[]]
        by_table.setdefault(spec.key, []).append(atoms.get(node_id, []))
    candidates = {key: found for key, found in by_table.items() if all(found)}
    bounds = _bind_constants(connection, candidates, catalog)
    return StatementFilters(tables, bounds, only_these=not named_in_text)


def _parse(connection: duckdb.DuckDBPyConnection, sql: str) -> Node | None:
    """DuckDB's parse tree of a single SELECT statement, or None."""
    try:
        row = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0]
    except duckdb.Error:
        return None
    parsed = json.loads(row[0]) if row else {"error": True}
    if parsed.get("error") or len(parsed.get("statements", [])) != 1:
        return None
    return parsed["statements"][0]


def _walk(value: Any) -> Iterator[Node]:
    """Every JSON object in a parse tree, depth first."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def _strings(tree: Node) -> list[str]:
    """Every string constant, lower-cased."""
    return [
        str(node["literal"].get("text", "")).lower()
        for node in _walk(tree)
        if node.get("class") == "CONSTANT" and isinstance(node.get("literal"), dict)
    ]


def _catalogued(node: Node, specs: dict[tuple[str, str], TableSpec]) -> TableSpec | None:
    """The table a BASE_TABLE reference may read (a CTE of the same name counts too)."""
    if node.get("type") != "BASE_TABLE":
        return None
    name = str(node.get("table_name", "")).lower()
    schema = str(node.get("schema_name", "")).lower()
    matches = [spec for (layer, table), spec in specs.items() if table == name]
    if schema:
        matches = [spec for spec in matches if spec.layer.value == schema]
    return matches[0] if len(matches) == 1 else None


def _select_atoms(select: Node, occurrences: dict[int, TableSpec]) -> dict[int, list[_Atom]]:
    """The conjuncts of one SELECT's WHERE that constrain each catalogued table its FROM
    reads directly."""
    leaves = _leaves(select.get("from_table") or {})
    where = select.get("where_clause")
    if leaves is None or where is None or select.get("sample") is not None:
        return {}
    names = [_binding(leaf) for leaf in leaves]
    found = {}
    for leaf, name in zip(leaves, names, strict=True):
        spec = occurrences.get(id(leaf))
        if spec is None or leaf.get("at_clause") or leaf.get("column_name_alias"):
            continue
        if names.count(name) > 1:
            continue
        resolve = _resolver(leaf, spec, single=len(leaves) == 1)
        found[id(leaf)] = [atom for c in _conjuncts(where) if (atom := _atom(c, resolve))]
    return found


def _leaves(ref: Node) -> list[Node] | None:
    """The tables a FROM joins, or None if its joins or references are not plain."""
    if ref.get("sample") is not None:
        return None
    kind = ref.get("type")
    if kind == "JOIN":
        if ref.get("join_type") not in _JOIN_TYPES or ref.get("ref_type") not in _JOIN_REFS:
            return None
        left, right = _leaves(ref["left"]), _leaves(ref["right"])
        return None if left is None or right is None else left + right
    return [ref] if kind in {"BASE_TABLE", "SUBQUERY"} else None


def _binding(leaf: Node) -> str:
    """The name a column reference qualifies a FROM item by."""
    if leaf.get("alias"):
        return str(leaf["alias"]).lower()
    if leaf.get("type") == "BASE_TABLE":
        return str(leaf.get("table_name", "")).lower()
    return "unnamed_subquery"


def _resolver(leaf: Node, spec: TableSpec, *, single: bool) -> Resolver:
    """A function from a COLUMN_REF node to the table's column it surely names, or None."""
    binding = _binding(leaf)
    columns = {field.name.lower(): field.name for field in spec.schema}
    full = None if leaf.get("alias") else [spec.layer.value, spec.name]

    def resolve(node: Node) -> str | None:
        if node.get("class") != "COLUMN_REF":
            return None
        parts = [str(part).lower() for part in node.get("column_names", [])]
        if len(parts) == 1 and single:
            name = parts[0]
        elif len(parts) == 2 and parts[0] == binding:
            name = parts[1]
        elif len(parts) == 3 and parts[:2] == full:
            name = parts[2]
        else:
            return None
        column = columns.get(name)
        if column is None or _family(spec.schema.field(column).type) is None:
            return None
        return column

    return resolve


def _conjuncts(node: Node) -> Iterator[Node]:
    """The AND-ed parts of a WHERE clause."""
    if node.get("class") == "CONJUNCTION" and node.get("type") == "CONJUNCTION_AND":
        for child in node.get("children", []):
            yield from _conjuncts(child)
    else:
        yield node


def _atom(node: Node, resolve: Resolver) -> _Atom | None:
    """A conjunct of the accepted shapes with a column of the table on one side."""
    kind, cls = node.get("type"), node.get("class")
    if cls == "COMPARISON" and kind in _COMPARISONS:
        op, flipped = _COMPARISONS[kind]
        left, right = node["left"], node["right"]
        if (column := resolve(left)) and _constant(right):
            return _Atom(column, op, [right])
        if (column := resolve(right)) and _constant(left):
            return _Atom(column, flipped, [left])
        return None
    if cls == "OPERATOR" and kind == "COMPARE_IN":
        first, *values = node.get("children", [])
        if (column := resolve(first)) and values and all(map(_constant, values)):
            return _Atom(column, "in", values)
        return None
    if cls == "BETWEEN" and kind == "COMPARE_BETWEEN":
        bounds = [node["lower"], node["upper"]]
        if (column := resolve(node["input"])) and all(map(_constant, bounds)):
            return _Atom(column, "between", bounds)
    return None


def _constant(node: Node) -> bool:
    """Whether an expression is a constant that evaluates the same in any statement."""
    cls = node.get("class")
    if cls == "CONSTANT":
        return True
    if cls == "CAST":
        return _constant(node["child"])
    if cls == "FUNCTION":
        arguments = node.get("arguments", [])
        return (
            node.get("function_name") in _CONSTANT_FUNCTIONS
            and not node.get("schema")
            and not node.get("catalog")
            and not node.get("distinct")
            and node.get("filter") is None
            and not (node.get("order_bys") or {}).get("orders")
            and all(not a.get("name") and _constant(a["expression"]) for a in arguments)
        )
    return False


def _bare_string(node: Node) -> bool:
    """A plain 'text' literal: DuckDB casts it to the column's type, as the stats query will."""
    literal = node.get("literal")
    return (
        node.get("class") == "CONSTANT"
        and isinstance(literal, dict)
        and (literal.get("kind") == "STRING")
    )


def _family(dtype: pa.DataType) -> str | None:
    """Types whose Delta statistics order values exactly as DuckDB compares them."""
    if pa.types.is_integer(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        return "time"
    return None


def _value_family(duckdb_type: str) -> str | None:
    upper = duckdb_type.upper()
    if upper in _NUMBER_TYPES or upper.startswith("DECIMAL"):
        return "number"
    if upper == "VARCHAR":
        return "text"
    if upper == "DATE" or upper.startswith("TIMESTAMP"):
        return "time"
    return None


def _bind_constants(
    connection: duckdb.DuckDBPyConnection,
    candidates: dict[str, list[list[_Atom]]],
    catalog: Catalog,
) -> dict[str, tuple[Conjunction, ...]]:
    """Turn each constant into SQL text and keep the atoms whose constants are of the
    column's family (two round trips to DuckDB for the whole statement)."""
    nodes = [
        value
        for found in candidates.values()
        for atoms in found
        for atom in atoms
        for value in atom.values
    ]
    if not nodes:
        return {}
    try:
        texts = _sql_texts(connection, nodes)
        probe = ", ".join(f"typeof(({text}))" for text in texts)
        types = list(connection.execute(f"SELECT {probe}").fetchall()[0])
    except duckdb.Error:
        return {}
    typed = {
        id(node): (text, str(kind)) for node, text, kind in zip(nodes, texts, types, strict=True)
    }
    result = {}
    for key, found in candidates.items():
        schema = catalog.tables[key].schema
        conjunctions = []
        for atoms in found:
            bounds = tuple(
                bound for atom in atoms if (bound := _bound(atom, schema, typed)) is not None
            )
            if not bounds:
                break
            conjunctions.append(bounds)
        else:
            result[key] = tuple(conjunctions)
    return result


def _bound(atom: _Atom, schema: pa.Schema, typed: dict[int, tuple[str, str]]) -> Bound | None:
    """The atom as a Bound if its constants compare with the column without a cast of the
    column across families; several constants (IN, BETWEEN) must share one type, since
    DuckDB casts the column to their common type."""
    family = _family(schema.field(atom.column).type)
    bare = [_bare_string(node) for node in atom.values]
    kinds = {typed[id(node)][1] for node in atom.values}
    if all(bare):
        accepted = True
    elif any(bare) or len(kinds) != 1:
        accepted = False
    else:
        accepted = _value_family(next(iter(kinds))) == family
    if not accepted:
        return None
    return Bound(atom.column, atom.op, tuple(typed[id(node)][0] for node in atom.values))


def _sql_texts(connection: duckdb.DuckDBPyConnection, nodes: list[Node]) -> list[str]:
    """Each expression node back as SQL text, by DuckDB's own printer."""
    statements = [json.dumps({"error": False, "statements": [_select_of(node)]}) for node in nodes]
    calls = ", ".join("json_deserialize_sql(?)" for _ in statements)
    row = connection.execute(f"SELECT {calls}", statements).fetchall()[0]
    return [str(text).removeprefix("SELECT ") for text in row]


def _select_of(expression: Node) -> Node:
    """A parse tree of `SELECT <expression>`."""
    return {
        "node": {
            "type": "SELECT_NODE",
            "modifiers": [],
            "cte_map": {"map": []},
            "select_list": [expression],
            "from_table": {"type": "EMPTY", "alias": "", "sample": None},
            "where_clause": None,
            "group_expressions": [],
            "group_sets": [],
            "aggregate_handling": "STANDARD_HANDLING",
            "having": None,
            "sample": None,
            "qualify": None,
        },
        "named_param_map": [],
    }
