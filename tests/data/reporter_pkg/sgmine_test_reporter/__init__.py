"""Test-only sgmine reporters (see pyproject.toml for their entry points)."""

from __future__ import annotations

import json
import os

#: The file RecordingReporter appends to, one JSON line per call.
LOG_VARIABLE = "SGMINE_TEST_REPORTER_LOG"


class RecordingReporter:
    """Appends what it received (file, candidates, metadata, context) to $SGMINE_TEST_REPORTER_LOG."""

    def report(self, prediction, context) -> None:
        record = {
            "source": prediction.source,
            "status": prediction.status,
            "candidates": [[c.space_group, c.symbol, c.probability] for c in prediction.candidates],
            "metadata": {k: v for k, v in prediction.metadata.items() if isinstance(v, (str, int, float))},
            "top_k": context.top_k,
            "model_version": context.model.model_version,
            "model_path": context.model_path,
        }
        with open(os.environ[LOG_VARIABLE], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class ExplodingReporter:
    """Fails on every file, as a reporter whose database is down would."""

    def report(self, prediction, context) -> None:
        raise RuntimeError(f"database unreachable while storing {os.path.basename(prediction.source)}")


#: An instance (not a class): entry points may name either.
exploding = ExplodingReporter()
