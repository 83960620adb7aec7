"""A tiny external agent for the command harness tests: it reads task.md and the installed
SKILL.md, and answers as the skill says.

The task's text picks the behaviour, so one script covers every case:
  "Reply with the word: X"  -> answers X (upper-cased if the skill says "Answer in upper case")
  "MODE: file"              -> writes the answer to answer.txt instead of printing the tag
  "MODE: sleep"             -> starts a grandchild sleeper, writes its pid to pids.txt, hangs
  "MODE: env"               -> answers with the names of the secret-looking variables it sees
  "MODE: fail"              -> exits with status 3
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path


def find_skill(root: Path) -> tuple[str, str]:
    """(name, body) of the first SKILL.md under root, hidden folders included."""
    for folder, _, files in sorted(os.walk(root)):
        if "SKILL.md" in files:
            text = (Path(folder) / "SKILL.md").read_text(encoding="utf-8")
            m = re.match(r"---\n(.*?)\n---\n(.*)", text, re.DOTALL)
            if not m:
                return "", text
            name = re.search(r"^name:\s*(.+)$", m.group(1), re.MULTILINE)
            return (name.group(1).strip() if name else ""), m.group(2)
    return "", ""


def main() -> int:
    root = Path.cwd()
    task = (root / "task.md").read_text(encoding="utf-8")
    name, skill = find_skill(root)
    mode = re.search(r"MODE:\s*(\w+)", task)
    mode = mode.group(1) if mode else "stdout"
    if mode == "fail":
        print("something went wrong", file=sys.stderr)
        return 3
    if mode == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (root / "pids.txt").write_text(f"{os.getpid()} {child.pid}")
        time.sleep(120)
        return 0
    if mode == "env":
        secret = sorted(k for k in os.environ if re.search(r"KEY|TOKEN|SECRET", k))
        answer = ",".join(secret) or "none"
    else:
        word = re.search(r"Reply with the word:\s*(\S+)", task)
        answer = word.group(1) if word else "unknown"
        if "Answer in upper case" in skill:
            answer = answer.upper()
    print(f"skill {name or '(none)'} read; working")
    if mode == "file":
        (root / "answer.txt").write_text(answer + "\n", encoding="utf-8")
    else:
        print(f"ANSWER: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
