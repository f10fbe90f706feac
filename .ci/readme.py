"""Kept so that `python .ci/readme.py [--check]` still works: it is `python tools/docs.py readme [--check]`."""
import pathlib, runpy, sys
sys.argv = ["docs.py", "readme", *sys.argv[1:]]
runpy.run_path(str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "docs.py"), run_name="__main__")
