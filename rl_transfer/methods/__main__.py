"""``python -m rl_transfer.methods`` prints docs/methods.md."""

from rl_transfer.methods.docs import support_matrix

print(support_matrix(), end="")
