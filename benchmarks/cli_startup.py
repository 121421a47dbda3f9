"""CLI start-up time: `crossfuse --help` / `list` / `plugins` against bare Python and `import torch`.

    python benchmarks/cli_startup.py [--repeat 5]

Prints the median wall time of each command and its ratio to `python -c pass`; the commands
that only list things must stay far below the cost of importing torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "crossfuse --help": [sys.executable, "-c", "from crossfuse.cli import main; main()", "--help"],
    "crossfuse list": [sys.executable, "-c", "from crossfuse.cli import main; main()", "list"],
    "crossfuse plugins": [sys.executable, "-c", "from crossfuse.cli import main; main()", "plugins"],
}


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {name: median_seconds(command, args.repeat) for name, command in COMMANDS.items()}
    base, torch_import = results["python -c pass"], results["python -c 'import torch'"]
    print(f"{'command':28} {'median s':>9} {'x python':>9} {'x import torch':>15}")
    for name, seconds in results.items():
        print(f"{name:28} {seconds:9.3f} {seconds / base:9.1f} {seconds / torch_import:15.2f}")


if __name__ == "__main__":
    main()
