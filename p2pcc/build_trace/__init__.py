"""The build trace of `p2pcc build --trace`: the recorder (trio) and the file it writes."""
