"""pgjdbc from Debian's libpostgresql-jdbc-java, and Java probe programs compiled with javac."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

JAR = Path("/usr/share/java/postgresql.jar")


def compile_jdbc_probe(source: Path, out: Path) -> Path:
    """Compile ``source`` (a Java 17 program using pgjdbc) into ``out``; returns ``out``."""
    assert JAR.exists(), "libpostgresql-jdbc-java is not installed (apt-get install it)"
    assert shutil.which("javac"), "javac (Java 17) is not installed"
    subprocess.run(["javac", "-d", str(out), str(source)], check=True, timeout=120)
    return out
