"""Files the caller sends with a run (`files` argument) and files the code
writes, kept in the interpreter's memory: a session keeps them between its
runs. What the code wrote during a run comes back with its report: images
as image content, other files in the report's `files`."""

import base64
import json

# Bytes all files of one interpreter may hold together.
MAX_HELD = 32 << 20
# Bytes of written files one run returns, at most (the rest are listed
# without their content).
MAX_RETURNED = 512 << 10

_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "svg": "image/svg+xml", "csv": "text/csv", "json": "application/json", "html": "text/html",
    "htm": "text/html", "md": "text/markdown", "txt": "text/plain", "log": "text/plain",
}


def guess_mime(name):
    """The media type a file's name suggests."""
    extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
    return _TYPES.get(extension, "application/octet-stream")


def is_valid_name(name):
    """Whether `name` can name a file: 1 to 255 characters, no `/`, not `.` or `..`."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and not any(c in name for c in "/\\\0")
            and name not in (".", ".."))


class Files:
    """The files of one run (or session): `read`, `bytes`, `write`, `list`."""

    def __init__(self):
        self._files = {}  # name → [data, mime_type, written]

    def _put(self, name, data, mime_type, written):
        others = sum(len(f[0]) for n, f in self._files.items() if n != name)
        if others + len(data) > MAX_HELD:
            raise ValueError(f"files may hold {MAX_HELD >> 20} MiB in all; {name!r} would pass it")
        self._files[name] = [data, mime_type or guess_mime(name), written]

    def receive(self, sent):
        """Adds the files the caller sent; a problem as a message, else None."""
        if not isinstance(sent, dict):
            return "`files` must be an object"
        for name, file in sent.items():
            if not is_valid_name(name):
                return f"`files` name {name!r} is not a usable file name"
            if isinstance(file, str):
                data, mime_type = file.encode(), None
            elif isinstance(file, dict) and isinstance(file.get("base64"), str):
                try:
                    data = base64.b64decode(file["base64"], validate=True)
                except ValueError as e:
                    return f"`files` {name!r}: not base64: {e}"
                mime_type = file.get("mime_type")
            else:
                return f"`files` {name!r} must be text or {{\"base64\": …}}"
            try:
                self._put(name, data, mime_type, False)
            except ValueError as e:
                return str(e)
        return None

    def list(self):
        """The names of the files held."""
        return sorted(self._files)

    def bytes(self, name):
        """The bytes of file `name`."""
        if name not in self._files:
            raise FileNotFoundError(f"no file {name!r}")
        return self._files[name][0]

    def read(self, name):
        """The text of file `name` (UTF-8)."""
        return self.bytes(name).decode()

    def write(self, name, data, mime_type=None):
        """Writes file `name` (text or bytes); it comes back with the run."""
        if not is_valid_name(name):
            raise ValueError(f"{name!r} is not a usable file name (no `/`)")
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("write text or bytes")
        self._put(name, bytes(data), mime_type, True)

    def take_written(self):
        """The files written since the last run: (listed, images as (mime, bytes))."""
        listed, images, budget = [], [], MAX_RETURNED
        for name in sorted(self._files):
            file = self._files[name]
            if not file[2]:
                continue
            file[2] = False
            data, mime_type = file[0], file[1]
            entry = {"name": name, "mime_type": mime_type, "size": len(data)}
            if len(data) <= budget:
                if mime_type.startswith("image/"):
                    entry["image"] = True
                    images.append((mime_type, data))
                    budget -= len(data)
                else:
                    try:
                        entry["text"] = data.decode()
                        budget -= len(data)
                    except UnicodeDecodeError:
                        entry["base64"] = base64.b64encode(data).decode()
                        budget -= len(data) * 4 // 3
            listed.append(entry)
        return listed, images

    def __repr__(self):
        return f"<files: {json.dumps(self.list())}>"
