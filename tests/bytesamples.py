"""Byte samples of a daemon's configuration file that a backend must keep byte for byte: a file
larger than one read chunk, a line that is not UTF-8, an ifupdown stanza. Shared by the unit
tests of the backends' rewrite and the distro tier's large-file test."""

FILLER = b"".join(b"# padding line %05d of an old, long interfaces file\n" % i for i in range(1600))
ODD = b"# caf\xe9 \xff\xfe (Latin-1 and bytes that are no UTF-8 at all)\n"
VZ1 = b"\niface vz1 inet manual\n    pre-up true\n"
