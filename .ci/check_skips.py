"""Fail CI when a test needing PostgreSQL, Redis or the browser was skipped (it must run in CI)."""

import sys
import xml.etree.ElementTree as ET

WATCHED = ("postgres", "redis", "chromium", "browser", "playwright")

tree = ET.parse(sys.argv[1])
bad, total, skipped = [], 0, 0
for case in tree.iter("testcase"):
    total += 1
    for skip in case.findall("skipped"):
        skipped += 1
        text = f"{case.get('classname')}.{case.get('name')} {skip.get('message', '')} {skip.text or ''}".lower()
        if any(word in text for word in WATCHED):
            bad.append(f"{case.get('classname')}::{case.get('name')}: {skip.get('message', '')}")
if total == 0:
    sys.exit("CI: no tests ran")
if bad:
    print("CI: these tests need PostgreSQL/Redis/the browser and were skipped:", *bad, sep="\n  ")
    sys.exit(1)
print(f"CI: {total} tests, {skipped} skipped, none of them a PostgreSQL/Redis/browser test")
