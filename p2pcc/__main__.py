"""`python -m p2pcc` runs the same CLI as the `p2pcc` console script."""

from p2pcc.cli import run

run()
