"""``python -m training.independent_leg --out DIR --count N --seed S``."""

from training.independent_leg.cli import main

main()
