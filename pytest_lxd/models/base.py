"""The model base: typed fields, lazy loading, dirty tracking by snapshot, ETag-guarded saves.

A model's fields are its class annotations (``name: str``); ``_writable`` names those a PUT
sends, ``_key`` the identity fields. Values live in ``_data`` (what the server sent, plus local
changes); ``_synced`` is a deep copy of the writable values as last loaded, so ``dirty`` sees
every change, in-place edits of ``config``/``devices`` included. Fields the server sends that
the class does not declare are kept (readable as attributes, and in :attr:`Model.extra`).

Lifecycle: objects from ``all()`` hold only their key and load on first access to another
field; ``sync()`` reloads and forgets local changes; ``rollback()`` restores the last loaded
state without a request; ``save()`` writes only when dirty, with ``If-Match`` so that a
concurrent change raises :class:`~pytest_lxd.exceptions.ETagMismatch` instead of being lost.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import requests

from .. import exceptions
from ..operations import handle_async

if TYPE_CHECKING:
    from ..client import APINode, Client
    from .operation import Operation

__all__ = ["AttributeDict", "Manager", "Model", "name_from_url"]

_MISSING: Any = object()
M = TypeVar("M", bound="Model")


def name_from_url(url: str) -> str:
    """The last path segment of an object URL, without ``?project=`` (pylxd kept it)."""
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])


def etag_of(response: requests.Response) -> str | None:
    value = response.headers.get("ETag")
    return value.strip('"') if value else None


class AttributeDict(dict[str, Any]):
    """A dict whose keys also read as attributes (``state.addresses``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Model:
    """Base of every LXD object (see the module docstring for the lifecycle)."""

    _key: ClassVar[tuple[str, ...]] = ("name",)
    _writable: ClassVar[tuple[str, ...]] = ()
    _fields: ClassVar[frozenset[str]] = frozenset()

    #: pylxd exposes ``Model.NotFound``; kept for code that catches it there.
    NotFound: ClassVar[type[exceptions.NotFound]] = exceptions.NotFound

    client: Client
    _data: dict[str, Any]
    _synced: dict[str, Any]
    _etag: str | None
    _loaded: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: set[str] = set()
        for klass in cls.__mro__:
            if klass is Model or not issubclass(klass, Model):
                continue
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if not name.startswith("_") and "ClassVar" not in str(annotation):
                    fields.add(name)
        cls._fields = frozenset(fields)

    def __init__(self, client: Client, **data: Any) -> None:
        """``Model(client, **fields)``: values given here count as the server's (not dirty)."""
        object.__setattr__(self, "client", client)
        object.__setattr__(self, "_etag", None)
        object.__setattr__(self, "_loaded", False)
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_synced", {})
        self._load(data, etag=None, loaded=False)

    # -- construction helpers ----------------------------------------------------------------
    @classmethod
    def _from_response(cls: type[M], client: Client, response: requests.Response,
                       **parents: Any) -> M:
        """A fully loaded object from a single-object GET (keeps its ETag)."""
        obj = cls(client, **parents)
        obj._load(response.json()["metadata"], etag=etag_of(response), loaded=True)
        return obj

    @classmethod
    def _from_data(cls: type[M], client: Client, data: dict[str, Any], **parents: Any) -> M:
        """A loaded object from a list entry (``recursion=1``: no ETag)."""
        obj = cls(client, **parents)
        obj._load(data, etag=None, loaded=True)
        return obj

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: adjust the server's JSON before it is stored (e.g. strip name prefixes)."""
        return data

    def _load(self, data: dict[str, Any], *, etag: str | None, loaded: bool) -> None:
        data = self._normalize(dict(data))
        if loaded:
            keep = {k: self._data[k] for k in self._key if k in self._data and k not in data}
            self._data = {**keep, **data}
            self._synced = {}
        else:
            self._data.update(data)
        for name in self._writable:
            if name in data:
                self._synced[name] = copy.deepcopy(data[name])
        self._etag = etag
        self._loaded = self._loaded or loaded

    # -- attribute access --------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: fields live in _data, not in __dict__.
        if name.startswith("_"):
            raise AttributeError(name)
        data = self.__dict__.get("_data")
        if data is None:
            raise AttributeError(name)
        if name in data:
            return data[name]
        if name in self._fields and not self._loaded:
            self.sync()
            if name in self._data:
                return self._data[name]
        raise AttributeError(
            f"{type(self).__name__} {self._describe()} has no field {name!r}"
            + (" (the server did not send it)" if name in self._fields else ""))

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name == "client" or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        elif name in self._fields or name in self._data:
            self._data[name] = value
        else:
            object.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | self._fields | set(self._data))

    @property
    def extra(self) -> dict[str, Any]:
        """Fields the server sent that this class does not declare (forward compatibility)."""
        return {k: v for k, v in self._data.items() if k not in self._fields}

    # -- identity --------------------------------------------------------------------------
    def _identity(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.client.project,
                *(self._data.get(k) for k in self._key))

    def _describe(self) -> str:
        return " ".join(repr(self._data.get(k)) for k in self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        return type(other) is type(self) and other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}={self._data.get(k)!r}" for k in self._key)
        return f"{type(self).__name__}({keys})"

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(field, value)`` pairs, loading the object first if needed (as in pylxd)."""
        if not self._loaded:
            self.sync()
        yield from list(self._data.items())

    # -- REST ---------------------------------------------------------------------------------
    @property
    def api(self) -> APINode:
        """The object's REST node (``client.api.<collection>[<name>]``)."""
        raise NotImplementedError

    @property
    def etag(self) -> str | None:
        """The ETag of the last loaded state (None when unknown)."""
        return self._etag

    @property
    def dirty(self) -> bool:
        """True when a writable field differs from the last loaded state."""
        return bool(self.dirty_fields)

    @property
    def dirty_fields(self) -> list[str]:
        """The writable fields changed locally since the last load."""
        return [name for name in self._writable
                if name in self._data
                and self._data[name] != self._synced.get(name, _MISSING)]

    def sync(self, rollback: bool = False) -> None:
        """Reload from the server, replacing every field and forgetting local changes.

        ``rollback`` is accepted for pylxd compatibility; the reload always discards them.
        """
        response = self.api.get()
        self._load(response.json()["metadata"], etag=etag_of(response), loaded=True)

    def rollback(self) -> None:
        """Discard local changes: back to the last loaded state (no request)."""
        for name in self._writable:
            if name in self._synced:
                self._data[name] = copy.deepcopy(self._synced[name])
            else:
                self._data.pop(name, None)

    def marshall(self, skip_readonly: bool = True) -> dict[str, Any]:
        """What a PUT sends: the writable fields (every loaded field if not ``skip_readonly``)."""
        if not skip_readonly:
            return copy.deepcopy(self._data)
        return {k: copy.deepcopy(self._data[k]) for k in self._writable if k in self._data}

    def _guard_concurrent_change(self) -> None:
        """Before a save without an ETag: load the server's state and refuse if it moved."""
        response = self.api.get()
        server = self._normalize(dict(response.json()["metadata"]))
        changed = [name for name in self._writable
                   if name in self._synced and server.get(name, _MISSING) != self._synced[name]]
        if changed:
            raise exceptions.ETagMismatch(
                response, f"{type(self).__name__} {self._describe()} changed on the server "
                f"since it was loaded ({', '.join(changed)}); sync() and apply the change again",
                error_code=412)
        for name, value in server.items():
            if name not in self._data:
                self._data[name] = value
                if name in self._writable:
                    self._synced[name] = copy.deepcopy(value)
        self._etag = etag_of(response)
        self._loaded = True

    def save(self, wait: bool = False) -> Operation | None:
        """PUT the writable fields if (and only if) the object is dirty.

        Sends ``If-Match`` with the ETag of the last load, so a concurrent change on the
        server raises :class:`~pytest_lxd.exceptions.ETagMismatch` instead of being
        overwritten. Afterwards the object is reloaded (new ETag, clean). Returns the
        operation when LXD ran the update in the background and ``wait`` is false.
        """
        if not self.dirty:
            return None
        if not self._loaded or self._etag is None:
            self._guard_concurrent_change()
        headers = {"If-Match": f'"{self._etag}"'} if self._etag else {}
        response = self.api.put(json=self.marshall(), headers=headers)
        return self._after_write(response, wait)

    def _after_write(self, response: requests.Response, wait: bool,
                     resync: bool = True) -> Operation | None:
        op = handle_async(self.client, response, wait)
        if op is not None and not op.done:
            # Still running: treat what we sent as the state; the ETag is unknown until then.
            self._synced = {k: copy.deepcopy(v) for k, v in self._data.items()
                            if k in self._writable}
            self._etag = None
        elif resync:
            self.sync()
        return op

    def delete(self, wait: bool = False) -> Operation | None:
        """DELETE the object; returns the operation if LXD runs it in the background."""
        response = self.api.delete()
        return handle_async(self.client, response, wait)

    def put(self, put_object: dict[str, Any], wait: bool = False) -> Operation | None:
        """PUT ``put_object`` as given (no ``If-Match``), then reload."""
        return self._after_write(self.api.put(json=put_object), wait)

    def raw_put(self, put_object: dict[str, Any], wait: bool = False) -> Operation | None:
        """PUT ``put_object`` as given; the object is not reloaded."""
        return handle_async(self.client, self.api.put(json=put_object), wait)

    def patch(self, patch_object: dict[str, Any], wait: bool = False) -> Operation | None:
        """PATCH ``patch_object``, then reload."""
        return self._after_write(self.api.patch(json=patch_object), wait)

    def raw_patch(self, patch_object: dict[str, Any], wait: bool = False) -> Operation | None:
        """PATCH ``patch_object``; the object is not reloaded."""
        return handle_async(self.client, self.api.patch(json=patch_object), wait)

    def post(self, json: dict[str, Any] | None = None, wait: bool = False) -> Operation | None:
        """POST ``json`` to the object (renames, migrations, ...)."""
        return handle_async(self.client, self.api.post(json=json), wait)

    def _rename(self, body: dict[str, Any], wait: bool) -> Operation | None:
        """POST a rename and, once done, take the new name (the ETag may cover the name)."""
        op = handle_async(self.client, self.api.post(json=body), wait)
        if op is None or op.done:
            self._data["name"] = body["name"]
            self._etag = None
        return op


#: How LXD writes "never" in ``expires_at`` (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


class SnapshotModel(Model):
    """What instance and volume snapshots share: the name is the last segment of LXD's
    ``parent/snap``, and ``expires_at`` is None where LXD sends Go's zero time."""

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("name"), str):
            data["name"] = data["name"].rsplit("/", 1)[-1]
        if data.get("expires_at") == ZERO_TIME:
            data["expires_at"] = None
        return data

    def marshall(self, skip_readonly: bool = True) -> dict[str, Any]:
        body = super().marshall(skip_readonly)
        if "expires_at" in body and body["expires_at"] is None:
            body["expires_at"] = ZERO_TIME
        return body


class Manager:
    """Base of the ``client.<collection>`` managers."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _fetch(self, cls: type[M], node: APINode, **parents: Any) -> M:
        """GET one object into a loaded ``cls`` (with its ETag)."""
        return cls._from_response(self.client, node.get(), **parents)

    def _list(self, cls: type[M], node: APINode, recursion: int = 0, key: str = "name",
              **parents: Any) -> list[M]:
        """A collection: sparse objects (``recursion=0``) or loaded ones (``recursion=1``)."""
        if recursion:
            items = node.get(params={"recursion": 1}).json()["metadata"] or []
            return [cls._from_data(self.client, item, **parents) for item in items]
        urls = node.get().json()["metadata"] or []
        return [cls(self.client, **{key: name_from_url(url)}, **parents) for url in urls]

    def _exists(self, getter: Any, *args: Any) -> bool:
        try:
            getter(*args)
        except exceptions.NotFound:
            return False
        return True
