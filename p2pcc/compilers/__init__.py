"""Local compilers: probing them into fingerprints and caching the result.

`probe` runs a compiler (through `run_capped`) and hashes its binaries, `names` resolves
it and derives its language and remote name, `cache` keeps the result on disk.

Kept empty on purpose: the per-compile wrapper imports `p2pcc.compilers.cache`, and
everything imported here would be paid on every compiler call.
"""
