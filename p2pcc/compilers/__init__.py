"""Local compilers: probing them into fingerprints (`probe`) and caching the result (`cache`).

Kept empty on purpose: the per-compile wrapper imports `p2pcc.compilers.cache`, and
everything imported here would be paid on every compiler call.
"""
