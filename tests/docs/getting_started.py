#!/usr/bin/env python3
"""Runs docs/getting-started.md as a newcomer would: every `sh` block of sections 2 to 7, in
order, as written, in one bash with `set -euo pipefail`, against a fresh server whose data
directory is `./data` of the working directory (so the CLI finds the bootstrap credential there,
as the guide says). Blocks preceded by `<!-- not run by the getting-started test: why -->`
are skipped (they need a person at a browser, or build the release binary); section 1 starts
the server and sections 8 and 9 need a PostgreSQL superuser and a production key.

Usage: python3 tests/docs/getting_started.py DATA_DIR  (run by tests/docs/run.sh)
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile

SKIP = re.compile(r"<!-- not run by the getting-started test: (.*) -->")


def blocks(doc: str) -> list[tuple[int, str]]:
    """The runnable `sh` blocks between section 2 and section 8, with their line numbers."""
    lines = doc.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("## 2."))
    end = next(i for i, l in enumerate(lines) if l.startswith("## 8."))
    found, skipped, i = [], None, start
    while i < end:
        line = lines[i]
        marker = SKIP.fullmatch(line.strip())
        if marker:
            skipped = marker.group(1)
        elif line.strip() == "```sh":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            if skipped is None:
                found.append((i + 1, "\n".join(lines[i + 1 : j])))
            else:
                print(f"getting-started: skipped the block at line {i + 1}: {skipped}")
            skipped, i = None, j
        i += 1
    return found


def main() -> int:
    data_dir = pathlib.Path(sys.argv[1]).resolve()
    root = pathlib.Path(__file__).resolve().parents[2]
    runnable = blocks((root / "docs/getting-started.md").read_text())
    script = "set -euo pipefail\n" + "\n".join(
        f'echo "--- docs/getting-started.md line {line}" >&2\n{body}' for line, body in runnable
    )
    with tempfile.TemporaryDirectory() as work:
        os.symlink(data_dir, pathlib.Path(work) / "data")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PORTCULLIS_API_KEY", "PORTCULLIS_API_KEY_FILE", "BROWSER", "DISPLAY")
        }
        target = os.environ.get("CARGO_TARGET_DIR", str(root / "target"))
        env["PATH"] = f"{pathlib.Path(target).resolve() / 'debug'}:{env['PATH']}"
        env["PORTCULLIS_CONFIG_DIR"] = str(pathlib.Path(work) / "config")
        env.setdefault("USER", "newcomer")
        result = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-4000:])
        print(result.stderr[-4000:], file=sys.stderr)
        print(f"FAIL: docs/getting-started.md stopped with exit code {result.returncode} (see the last '---' line)")
        return 1
    print(f"getting-started: OK: {len(runnable)} blocks of sections 2-7 ran as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
