"""Read one secret (client secret, refresh token) from a file, as people and editors leave them.

Promises: the file's one value is returned, stripped of surrounding whitespace and of a UTF-8
byte-order mark. UTF-16/32 text (what Windows editors call "Unicode"), other non-UTF-8 text
(Latin-1, Windows-1252), an empty file, a file over 64 KiB or one holding more than one word or
line is a :class:`SecretFileError` with one line that names the file and never quotes its
content. The file's permission bits come back too, so the caller can warn when other users may
read it. :func:`write_private` is the writing side (a new refresh token, the token cache):
atomic, mode 0600 from the first byte.
:func:`utf8_text` is the same decoding rule, shared with the configuration file.

Zoho's docs say nothing about files; these rules are ours. Zoho's secrets are short ASCII tokens
(``1000.<hex>.<hex>``), so whitespace inside a value always means the wrong file or a pasted
``key = value`` line.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from bookings_sync.atomic import write_atomically

# A secret is a few hundred bytes; anything this big is the wrong file.
MAX_BYTES = 64 * 1024


class SecretFileError(ValueError):
    """One line naming the file; never the content."""


def utf8_text(data: bytes) -> str:
    """``data`` as UTF-8 text, a leading byte-order mark dropped. UnicodeError (one line, no
    content quoted) for UTF-16/32 and for other encodings."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        raise UnicodeError("UTF-16 or UTF-32 text, expected UTF-8: save it as UTF-8")
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = len(data) - len(body) + exc.start
        raise UnicodeError(f"not UTF-8 text (invalid byte at offset {offset}, as Latin-1 or "
                           f"Windows-1252 text has): save it as UTF-8") from None


def read_secret(file: Path, name: str) -> tuple[str, int]:
    """The ``name`` (e.g. ``refresh_token``) held in ``file``, and the file's permission bits."""
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
            mode = os.fstat(fh.fileno()).st_mode & 0o7777
    except OSError as exc:
        raise SecretFileError(f"cannot read {file}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise SecretFileError(f"{file} is over 64 KiB: a secret file holds only the {name}")
    try:
        value = utf8_text(data).strip()
    except UnicodeError as exc:
        raise SecretFileError(f"{file}: {exc}") from None
    if not value:
        raise SecretFileError(f"{file} is empty")
    if not value.isprintable() or any(char.isspace() for char in value):
        raise SecretFileError(f"{file} holds more than one word or line: it must hold only "
                              f"the {name}")
    return value, mode


def write_private(file: Path, data: bytes) -> None:
    """Replace ``file`` with ``data`` atomically, mode 0600 from the first byte
    (:func:`bookings_sync.atomic.write_atomically`). Raises OSError."""
    write_atomically(file, data, mode=0o600)
