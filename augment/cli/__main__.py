"""``python -m augment.cli``: what ``augment run --nproc N`` relaunches under torchrun."""

from augment.cli import main

main()
