"""Multipart uploads read with a per-file byte limit applied while the request streams in.

Starlette's form parser spools every uploaded file whole (to a temporary file once over 1 MB) before the
endpoint runs, so a 57 MB upload was written to disk before serve's 20 MB limit could refuse it. Here the
bytes of a file part beyond the limit are dropped as they arrive: at most ``max_bytes`` of any file is kept,
and the file's real size is still known for the message.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

__all__ = ["LimitedUploads", "MultiPartException", "read_limited_form"]


class LimitedUploads(MultiPartParser):
    """A multipart parser that keeps at most ``max_bytes`` of each file part and counts the rest."""

    def __init__(
        self, headers: Headers, stream: AsyncGenerator[bytes, None], max_bytes: int, max_files: int
    ) -> None:
        super().__init__(headers, stream, max_files=max_files, max_fields=100)
        self.max_bytes = max_bytes
        self.sizes: dict[int, int] = {}  # id(UploadFile) -> bytes received, kept or not

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._current_part.file
        if upload is None:
            super().on_part_data(data, start, end)
            return
        size = self.sizes.get(id(upload), 0) + (end - start)
        self.sizes[id(upload)] = size
        if size <= self.max_bytes:  # beyond the limit nothing more is kept: the file is refused anyway
            super().on_part_data(data, start, end)

    def size(self, upload: UploadFile) -> int:
        """The bytes the client sent for ``upload`` (more than it holds when over the limit)."""
        return self.sizes.get(id(upload), 0)


async def read_limited_form(
    headers: Headers, stream: AsyncGenerator[bytes, None], max_bytes: int, max_files: int
) -> tuple[FormData, LimitedUploads]:
    """Parse a multipart request keeping at most ``max_bytes`` per file; the parser tells each file's size.

    Raises MultiPartException for a body that is not multipart form data or has more than ``max_files``.
    """
    if not headers.get("content-type", "").startswith("multipart/form-data"):
        raise MultiPartException("send the photos as multipart/form-data (field 'files')")
    parser = LimitedUploads(headers, stream, max_bytes, max_files)
    return await parser.parse(), parser
