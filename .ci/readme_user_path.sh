#!/usr/bin/env bash
# Proves the README's user install path (issue #35): copies the checkout's tracked files to a
# clean folder, runs the README's bash blocks between the `user-install` markers exactly as
# written (they create their own venv: runtime, then the sgmine-diffpy plugin), and checks the
# answers: `sgmine refine` and `sgmine identify` on Ni.gr name Fm-3m with Rw < 0.15.
# Needs libgsl-dev (the README tells users to install it; .ci/run does it before calling this).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/sgmine-readme.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A clean copy: the tracked files as they are in the work tree (no .venv, no build outputs).
(cd "$root" && git ls-files -z | xargs -0 tar -cf - 2>/dev/null) | (cd "$work" && tar -xf -)

# The commands: every line of the ```bash blocks between the markers, in order.
awk '
    /<!-- user-install:/ && !/user-install: end/ { inside = 1; next }
    /<!-- user-install: end -->/ { inside = 0 }
    inside && /^```bash/ { block = 1; next }
    inside && /^```/ { block = 0; next }
    inside && block { print }
' "$root/README.md" > "$work/readme_commands.sh"
if [ ! -s "$work/readme_commands.sh" ]; then
    echo "readme_user_path: no user-install commands found in README.md" >&2
    exit 1
fi
echo "readme_user_path: running the README's user install commands in $work:" >&2
sed 's/^/    /' "$work/readme_commands.sh" >&2

cd "$work"
# A user's shell: no venv active, the project's CI venv not on PATH.
env -u VIRTUAL_ENV PATH="$(echo "$PATH" | tr ':' '\n' | grep -v '/\.venv/bin$' | paste -sd:)" \
    bash -euo pipefail readme_commands.sh > readme_commands.log 2>&1 || {
    tail -n 40 readme_commands.log >&2
    echo "readme_user_path: the README's commands failed" >&2
    exit 1
}

# The answers, read from the tables the commands wrote.
python3 - <<'EOF'
import csv
import sys

def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))

refine = [r for r in rows("ni-refine.csv") if r.get("status") == "ok"]
best = min(refine, key=lambda r: float(r["rw"]))
summary = rows("ni-identify.summary.csv")[0]
print(f"readme_user_path: refine best {best['cif']} {best['symbol']} Rw {float(best['rw']):.3f}; "
      f"identify {summary.get('best_symbol')} Rw {summary.get('best_rw')}", file=sys.stderr)
problems = []
if best["symbol"] != "Fm-3m" or float(best["rw"]) >= 0.15:
    problems.append("sgmine refine did not find Fm-3m with Rw < 0.15 on Ni.gr")
if summary.get("best_symbol") != "Fm-3m" or not summary.get("best_rw") or float(summary["best_rw"]) >= 0.15:
    problems.append("sgmine identify did not answer Fm-3m with Rw < 0.15 on Ni.gr")
if problems:
    sys.exit("readme_user_path: " + "; ".join(problems))
EOF
echo "readme_user_path: ok" >&2
