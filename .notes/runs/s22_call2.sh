#!/usr/bin/env bash
# Session 22, call 2: s22r1's suite hit its 250 s limit at ~99% with two failures (names cut off).
# The suite again with names (-rfE, per-test timeout), then the failed tests alone on this tree and
# on ab/base (85c81b0, before the plan() memo commit) to tell a regression from a flaky test.
export PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
PYTHONPATH=$PWD timeout 90 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
PYTHONPATH=$PWD timeout 330 python3 -m pytest -q -n 15 --timeout 120 -rfE --junitxml=$OUT/junit.xml tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -12 | cut -c1-250
python3 - $OUT/junit.xml > $OUT/slow.txt <<'PY'
import sys, xml.etree.ElementTree as ET
cases = [(float(c.get("time", 0)), c.get("classname") + "::" + c.get("name")) for c in ET.parse(sys.argv[1]).iter("testcase")]
for t, n in sorted(cases, reverse=True)[:15]: print(f"{t:7.1f} {n}")
PY
head -8 $OUT/slow.txt
ids=$(grep -E "^(FAILED|ERROR) " $OUT/pytest.txt | awk '{print $2}' | head -8)
if [ -n "$ids" ]; then
  PYTHONPATH=$PWD timeout 100 python3 -m pytest -q --timeout 60 $ids > $OUT/again_tree.txt 2>&1; echo "again tree rc=$? $(el)s"; tail -15 $OUT/again_tree.txt | cut -c1-250
  (cd ab/base && PYTHONPATH=$PWD timeout 100 python3 -m pytest -q --timeout 60 $ids > $OUT/again_base.txt 2>&1; echo "again base rc=$? $(el)s"; tail -4 $OUT/again_base.txt | cut -c1-250)
fi
