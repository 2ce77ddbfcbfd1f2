"""The sans-I/O core: values, bytes and an explicit `now` in, values and bytes out.

Nothing under this package opens a socket, reads a clock, starts a process or imports
trio; the daemon and the CLI do that and feed the results in.  A test imports this
package in a fresh interpreter and checks `sys.modules` to keep it that way.
"""
