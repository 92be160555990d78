"""Two exact speed-ups of pyHanko 0.38's reading and difference analysis, installed once per process
(`install_fast_pdf_parsing`): same results, less work. Each replaced piece keeps the original beside it and
is only swapped in when pyHanko still has the shape it was written against.

1. Hex strings read a block at a time. pyHanko reads them byte by byte, and every earlier signature's
   /Contents (~32 KB of hex) is parsed again for each new signature and each validation.
2. The map of paths to every indirect object, which the difference analysis builds for each revision it
   compares (`HistoricalResolver._load_reverse_xref_cache`), walks only the parts of objects that can hold a
   reference. pyHanko walks every value along every path: the record's Vietnamese font (a /W array of ~1,350
   numbers) is reached once through the page and twice through each signature's stamp, so at 15 signatures
   one revision's map cost ~100 ms and the full validation ~1 s a record. Values that hold no reference add
   nothing to the map, so while pyHanko's own walk runs, the objects it resolves are handed to it with such
   values left out (arrays keep their length, so indices in the paths stay the same): the same paths, the
   same page-tree and structure-tree rules (pyHanko's code), a fraction of the steps.
3. Names read with one pattern match. pyHanko reads a name byte by byte through a generator and rebuilds it
   byte by byte; a name is read for every dictionary key, so this is the most frequent step of reading any
   object (signing, the check after it and the full validation all read the record). A plain name (printable
   ASCII, no `#` escape, followed by a delimiter within the block read) is made at once; anything else (an
   escape, a byte pyHanko refuses, the end of the file) goes to pyHanko's own reader.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

_HEX = bytes.maketrans(b"", b"")
_WHITESPACE = b" \t\r\n\f\x00"
_HEX_BLOCK = 65536
_ORIGINAL_HEX_READER: list[Any] = []
_ORIGINAL_PATHS: list[Any] = []
_ORIGINAL_NAME_READER: list[Any] = []
_NAME_BLOCK = 256
# a name's bytes that need no decoding: printable ASCII except PDF delimiters and the escape '#'; it must end
# at PDF whitespace or a delimiter (anything else: pyHanko's reader decides)
_PLAIN_NAME = re.compile(rb"/([!\"$&'*+,\-.0-9:;=?@A-Z\\^_`a-z|~]*)(?=[ \n\r\t\f\x00()<>\[\]{}/%])")


def _fast_hex_string(stream: Any) -> Any:
    """pyHanko's hex-string reader, a block at a time. Anything unusual (no closing bracket, a stray
    character) goes to pyHanko's own reader, which raises its own error."""
    from pyhanko.pdf_utils import generic

    start, chunks, size = stream.tell(), [], 0
    while True:
        block = stream.read(_HEX_BLOCK)
        end = block.find(b">")
        if not block or end >= 0:
            break
        chunks.append(block)
        size += len(block)
    digits = b"".join([*chunks, block[:end]])[1:].translate(_HEX, _WHITESPACE)
    if end < 0 or digits.translate(_HEX, b"0123456789abcdefABCDEF"):
        stream.seek(start)
        return _ORIGINAL_HEX_READER[0](stream)
    stream.seek(start + size + end + 1)
    return generic.pdf_string(binascii.unhexlify(digits + b"0" * (len(digits) % 2)))


def _fast_name(stream: Any) -> Any:
    """pyHanko's `NameObject.read_from_stream` for a plain name in one match; the rest is pyHanko's."""
    from pyhanko.pdf_utils import generic

    start = stream.tell()
    match = _PLAIN_NAME.match(stream.read(_NAME_BLOCK))
    if match is None:
        stream.seek(start)
        return _ORIGINAL_NAME_READER[0](stream)
    stream.seek(start + match.end())
    return generic.NameObject("/" + match.group(1).decode("ascii"))


def _pruned(obj: Any) -> Any:
    """`obj` without the values that hold no indirect reference (None when it holds none at all): dictionary
    entries are left out, array items become null so that the items after them keep their index."""
    from pyhanko.pdf_utils import generic

    if isinstance(obj, generic.IndirectObject):
        return obj
    if isinstance(obj, generic.DictionaryObject):
        kept = {}
        for key, value in obj.items():
            value = _pruned(value)
            if value is not None:
                kept[key] = value
        return generic.DictionaryObject(kept) if kept else None
    if isinstance(obj, generic.ArrayObject):
        items = [_pruned(value) for value in obj]
        if all(item is None for item in items):
            return None
        return generic.ArrayObject(generic.NullObject() if item is None else item for item in items)
    return None


def _resolve_pruned(resolver: Any, ref: Any) -> Any:
    """What pyHanko's path walk gets for `ref` while `_load_paths` runs: the object as of the resolver's
    revision (the same choice as `HistoricalResolver.get_object`) with its reference-free values left out, an
    empty dictionary when it has none. An object unchanged since that revision is pruned once for every
    revision (the reader shares it); pyHanko's per-revision copy of it is not needed, since the walk reads
    only the references' numbers. Encrypted objects take pyHanko's own way."""
    from pyhanko.pdf_utils import generic

    cache = resolver.__dict__["_edudesk_pruned"]
    if ref in cache:
        return cache[ref]
    reader = resolver.reader
    try:
        last = reader.xrefs.get_last_change(ref)
    except KeyError:
        last = None
    shared = reader.__dict__.setdefault("_edudesk_pruned", {}) if last is not None and last <= resolver.revision \
        else None
    key = (ref.idnum, ref.generation)
    if shared is not None and key in shared:
        cache[ref] = shared[key]
        return cache[ref]
    raw = reader.get_object(ref, transparent_decrypt=False) if shared is not None else \
        reader.get_object(ref, resolver.revision, transparent_decrypt=False)
    if isinstance(raw, generic.DecryptedObjectProxy):
        raw, shared = resolver.get_object(ref), None
    pruned = _pruned(raw)
    cache[ref] = pruned if pruned is not None else generic.DictionaryObject()
    if shared is not None:
        shared[key] = cache[ref]
    return cache[ref]


def _load_paths(resolver: Any) -> None:
    """pyHanko's `_load_reverse_xref_cache`, its walk fed pruned objects (see the module's text)."""
    if resolver._indirect_object_access_cache is not None:
        return
    resolver.__dict__["_edudesk_pruned"] = {}
    try:
        _ORIGINAL_PATHS[0](resolver)
    finally:
        del resolver.__dict__["_edudesk_pruned"]


def _call(resolver: Any, ref: Any) -> Any:
    """`HistoricalResolver.__call__`: pyHanko's, except inside `_load_paths`."""
    if "_edudesk_pruned" in resolver.__dict__:
        return _resolve_pruned(resolver, ref)
    return resolver.get_object(ref)


def install_fast_pdf_parsing() -> None:
    """Swap in the speed-ups (once per process; see the module's text)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import HistoricalResolver

    if not _ORIGINAL_HEX_READER:
        _ORIGINAL_HEX_READER.append(generic.read_hex_string_from_stream)
        generic.read_hex_string_from_stream = _fast_hex_string
    if not _ORIGINAL_NAME_READER and isinstance(generic.NameObject.__dict__.get("read_from_stream"), staticmethod):
        _ORIGINAL_NAME_READER.append(generic.NameObject.read_from_stream)
        generic.NameObject.read_from_stream = staticmethod(_fast_name)  # type: ignore[method-assign]
    if not _ORIGINAL_PATHS and hasattr(HistoricalResolver, "_load_reverse_xref_cache"):
        _ORIGINAL_PATHS.append(HistoricalResolver._load_reverse_xref_cache)
        setattr(HistoricalResolver, "_load_reverse_xref_cache", _load_paths)  # noqa: B010 - mypy: a method
        setattr(HistoricalResolver, "__call__", _call)  # noqa: B010
