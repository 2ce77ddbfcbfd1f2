"""The compiler masquerade: what runs when a build calls `gcc`, `cc`, `g++` … through the
links `p2pcc install-links` makes (docs/wrapper.md).

Every module of this package runs on every compiler call of every build, so each imports
only `os` and `sys` (and `p2pcc.statefile`, which imports only `os`): no typing,
dataclasses, enum, re, json or subprocess.  Kept empty on purpose, like
`p2pcc.compilers`: whatever is imported here is paid on every call.
"""
