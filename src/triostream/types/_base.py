"""The base of every wire type, and the kept fallback for types this version does not know."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "UnknownCitation",
    "UnknownContentBlock",
    "UnknownDelta",
    "UnknownEvent",
    "UnknownObject",
    "WireStruct",
]


class WireStruct(
    msgspec.Struct, kw_only=True, tag_field="type", repr_omit_defaults=True, dict=False
):
    """Base of the Messages API's objects: keyword-only, tagged by their ``type`` field.

    Optional fields default to ``msgspec.UNSET``: a field that was absent on the
    wire stays absent when the object is encoded again, and one that was
    ``null`` stays ``null``.  Unknown fields are tolerated (and not kept).
    """


class UnknownObject(dict[str, Any]):
    """An object whose ``type`` this version of triostream does not know, kept whole.

    It is the object's JSON as a ``dict`` (so ``msgspec.json.encode`` gives the
    API's JSON back unchanged), with ``.type`` and read access to its fields as
    attributes.
    """

    __slots__ = ()

    @property
    def type(self) -> str:
        """The object's ``type`` as sent by the API."""
        value = self.get("type")
        return value if isinstance(value, str) else ""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} of type {self.type!r} has no field {name!r}"
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class UnknownContentBlock(UnknownObject):
    """A content block of a type this version does not know."""

    __slots__ = ()


class UnknownDelta(UnknownObject):
    """A ``content_block_delta`` delta of a type this version does not know."""

    __slots__ = ()


class UnknownCitation(UnknownObject):
    """A citation of a type this version does not know."""

    __slots__ = ()


class UnknownEvent(UnknownObject):
    """A stream event of a type this version does not know; passed on to consumers."""

    __slots__ = ()
