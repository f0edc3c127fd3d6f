"""Structured logs: one JSON object a line, with the fields a log pipeline can filter on."""

from __future__ import annotations

import json
import logging

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# kopf attaches its whole settings object and a posting flag to every record: noise in a log line.
_SKIPPED = {"settings", "k8s_skip"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and k not in _SKIPPED and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs "Handler ... succeeded" for every watch event of every object: thousands of lines a minute at
    # fleet scale. Its warnings and errors still come through.
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
