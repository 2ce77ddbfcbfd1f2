"""p2pcc: peer-to-peer distcc — every workstation is both a client and a server."""

__version__ = "0.1.0"
