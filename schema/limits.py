"""What a document may ask: a depth limit that counts every field, and
introspection for API keys only (unless the settings open it).

Strawberry's own depth limiter skips introspection fields (`__schema`,
`__type`), so an anonymous client could send arbitrarily deep introspection
queries; this rule counts them like any other field. The token limit
(`MaxTokensLimiter`) already applies to every document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from engine.errors import ForbiddenError
from schema.errors import coded

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def depth_rule(max_depth: int) -> type[ValidationRule]:
    """A validation rule refusing operations more than `max_depth` fields deep.

    One class for the schema's lifetime, so the validation cache keeps working.
    """

    class MaxDepth(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                definition.name.value: definition
                for definition in self.context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            depth = _Depth(fragments).of(node.selection_set)
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"the operation is {depth} fields deep; at most {max_depth} are allowed "
                        "(QUESTLINE_MAX_QUERY_DEPTH)",
                        node,
                    )
                )

    return MaxDepth


class _Depth:
    """Depth of selection sets; each fragment measured once (a fragment spread
    many times must not cost exponential time), cycles counted as nothing
    (another rule refuses them)."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._measured: dict[str, int] = {}
        self._open: set[str] = set()

    def of(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                depth = 1 + self.of(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                depth = self.of(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                depth = self._fragment(selection.name.value)
            else:
                depth = 0
            deepest = max(deepest, depth)
        return deepest

    def _fragment(self, name: str) -> int:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return 0
        self._open.add(name)
        depth = self._measured[name] = self.of(fragment.selection_set)
        self._open.discard(name)
        return depth


def asks_introspection(document: DocumentNode) -> bool:
    """Whether any field of the document (fragments included) is `__schema` or `__type`."""

    class Finder(Visitor):
        found = False

        def enter_field(self, node: FieldNode, *_: Any) -> Any:
            if node.name.value in INTROSPECTION_FIELDS:
                self.found = True
                return BREAK
            return None

    finder = Finder()
    visit(document, finder)
    return finder.found


class IntrospectionForApiKeys(SchemaExtension):
    """Refuse introspection to anything but an API key (FORBIDDEN).

    Per request, not a validation rule: validation is cached per document,
    whoever sends it. `__typename` stays open: clients need it for unions.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and asks_introspection(document):
            principal = getattr(context.context, "principal", None)
            if principal is None or not principal.is_admin:
                raise coded(
                    ForbiddenError(
                        "introspection needs an API key on this server; generate client code "
                        "from the committed schema.graphql, or set "
                        "QUESTLINE_OPEN_INTROSPECTION=true"
                    )
                )
        yield
