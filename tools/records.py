"""The stored results under data/: every JSON file a provenance record, the README's figures equal to theirs, stale ones listed.

    python tools/records.py --check     exit 1 naming any data/*.json that is not a provenance record (chapter 00's
                                        `write_record` format) or any README benchmark row that differs from its record;
                                        list (without failing) every record whose measured code changed since it was made

A record is stale when a file it measures (its `measures` fingerprint) differs now from when it was made: the line
names the file, the record's date and commit, the file's last commit, and the command that remakes the record.
"""
import argparse, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/records.py", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="check the records and the README (else only list them)")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from sparse_ssm._core import read_record, stale_records
    from sparse_ssm.bench import check_readme
    paths, good, bad = sorted((ROOT / "data").glob("*.json")), [], []
    for q in paths:
        try: rec = read_record(q); good.append(q); print(f"{q.relative_to(ROOT)}: {rec['date'][:10]}, commit {str(rec['commit'])[:7]}{' + changes' if rec['dirty'] else ''}, load {rec['load_before']} to {rec['load_after']}; {rec['command']}")
        except ValueError as e: bad.append(str(e))
    stale = stale_records(good, ROOT)
    for line in stale: print("stale:", line)
    if a.check:
        try: check_readme((ROOT / "README.md").read_text(), ROOT / "data")
        except ValueError as e: bad.append(str(e))
    for line in bad: print("RECORD CHECK FAILED:", line, file=sys.stderr)
    print(f"{len(paths)} records, {len(stale)} stale, {len(bad)} problems")
    return 1 if (a.check and bad) else 0

if __name__ == "__main__": sys.exit(main())
