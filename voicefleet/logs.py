"""Logging set-up, called once from each service's ``__main__``.

Modules use ``logging.getLogger(__name__)`` and pass ``extra={"session": ...,
"turn": ..., "ms": ...}`` on lifecycle lines; both formats show those fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_FIELDS = ("service", "session", "turn", "ms")


class _Context(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "service"):
            record.service = self.service
        return True


#: Credentials that can appear in a logged URL or header (uvicorn's access log prints ``?token=<jwt>``).
_SECRETS = re.compile(r"((?:[?&](?:token|access_token|operator_token)=)|(?:[Bb]earer\s+))[^&\s\"']+")


def redact(text: str) -> str:
    """``text`` with token values replaced by ``[redacted]``."""
    return _SECRETS.sub(r"\1[redacted]", text)


class _Redact(logging.Filter):
    """No token in any log line, whoever logs it (our code, uvicorn, a library)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value not in (None, ""):
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines with the context fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(service)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("session", "turn", "ms")
            if getattr(record, name, None) not in (None, "")
        )
        return f"{line} {extra}" if extra else line


def setup_logging(service: str, level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(_Context(service))
    handler.addFilter(_Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that drowns the service's own lines.
    for noisy in ("httpx", "httpcore", "faster_whisper", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
