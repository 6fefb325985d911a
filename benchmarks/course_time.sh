#!/usr/bin/env bash
# The whole course's time, before and after a change: make demo's two steps (synthesis and
# derivation, training) from fresh data, then the six notebooks executed with nbconvert, for
# two commits checked out side by side, in interleaved pairs (A B, then B A) so that a slow
# minute of the machine does not fall on one side only. Issue 27's yardstick.
#
#   bash benchmarks/course_time.sh cac7b82 HEAD        # before issue 27 against now, 2 pairs
#   PAIRS=1 bash benchmarks/course_time.sh OLD NEW
#
# Both run with this checkout's .venv (make setup first); each commit's own code through
# PYTHONPATH, in a worktree under build/course_time/ (removed again at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
JUPYTER=$ROOT/.venv/bin/jupyter
OLD=${1:?usage: course_time.sh OLD_REV NEW_REV}
NEW=${2:?usage: course_time.sh OLD_REV NEW_REV}
WORK=$ROOT/build/course_time
mkdir -p "$WORK"
for rev in "$OLD" "$NEW"; do
    git worktree add -f --detach "$WORK/$rev" "$rev" >/dev/null
done
trap 'for rev in "$OLD" "$NEW"; do git worktree remove --force "$WORK/$rev" 2>/dev/null || true; done' EXIT

now() { date +%s.%N; }
course() {  # one fresh run of the course in worktree $1: prints its seconds
    local tree=$WORK/$1 t0 t1 t2 t3
    (
        cd "$tree"
        export PYTHONPATH=$tree
        unset HIPPO_CONFIG HIPPO_DATA HIPPO_DATA_DIR HIPPO_REAL_DATA
        rm -rf data/synthetic_hfh data/derived/demo runs/demo build/nb
        t0=$(now)
        "$PY" -m hippo_utils derive configs/demo.config --synthetic-if-missing >/dev/null 2>&1
        t1=$(now)
        "$PY" -m hippo_utils train configs/demo.config >/dev/null 2>&1
        t2=$(now)
        for nb in notebooks/0*.ipynb; do
            "$JUPYTER" nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1800 \
                --output-dir build/nb "$nb" >/dev/null 2>&1
        done
        t3=$(now)
        printf '%.1f s (synthesis + derivation %.1f, training %.1f, notebooks %.1f)\n' \
            "$(echo "$t3 - $t0" | bc)" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t3 - $t2" | bc)"
    )
}

for pair in $(seq "${PAIRS:-2}"); do
    if [ $((pair % 2)) -eq 1 ]; then order="$OLD $NEW"; else order="$NEW $OLD"; fi
    for rev in $order; do
        echo "pair $pair, $rev: $(course "$rev")"
    done
done
