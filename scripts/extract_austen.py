"""Jane Austen's six novels as plain text, out of the R data file of Debian's
r-cran-janeaustenr (MIT package; the novels, from Project Gutenberg, are public domain).
The file is a sequence of records, each a 4-byte big-endian length and a zlib-compressed R
serialisation (XDR) of one character vector: the novel's lines.

    python3 scripts/extract_austen.py <janeaustenr>/data/Rdata.rdb austen.txt   (stdlib only)
"""
import struct
import sys
import zlib

STRSXP = 16


def novels(data: bytes):
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj()
        out = d.decompress(data[pos + 4:])
        pos = len(data) - len(d.unused_data)
        if out[:2] != b"X\n":
            raise SystemExit("not an R XDR serialisation")
        p = 14
        # Version 3 serialisations carry the native encoding's name after the header.
        if struct.unpack(">i", out[2:6])[0] == 3:
            p += 4 + struct.unpack(">i", out[p:p + 4])[0]
        if struct.unpack(">i", out[p:p + 4])[0] & 0xFF != STRSXP:
            raise SystemExit("a record is not a character vector")
        n = struct.unpack(">i", out[p + 4:p + 8])[0]
        p += 8
        lines = []
        for _ in range(n):
            _flags, length = struct.unpack(">ii", out[p:p + 8])
            p += 8
            lines.append("" if length < 0 else out[p:p + length].decode("utf-8"))
            p += max(length, 0)
        yield "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        books = list(novels(f.read()))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n\n".join(books))
