"""Regenerate the bad-input corpus in this folder (the files are committed; this documents them).

Each file's expected outcome is in EXPECTED.csv: ``ok`` (scored, maybe with a warning that
contains the given text) or ``error`` (an error row whose message contains the text).
Run from anywhere: ``python tests/data/bad/make_corpus.py``.
"""

import gzip
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def fcc_gr(r, a=3.52, sigma=0.08):
    """G(r) = R(r)/r − 4πρ₀r of an fcc crystal (Ni-like, lattice constant ``a`` Å), peaks of width
    ``sigma`` Å: a curve the plausibility checks accept, so that only the format is odd."""
    n = int(np.ceil((float(np.max(r)) + 1) / a)) + 1
    ijk = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    d = np.linalg.norm((ijk[:, None, :] + basis[None]).reshape(-1, 3), axis=1) * a
    d, count = np.unique(np.round(d[(d > 0.1) & (d < float(np.max(r)) + 1)], 6), return_counts=True)
    rdf = (count * np.exp(-((r[:, None] - d) ** 2) / (2 * sigma**2))).sum(axis=1) / (sigma * np.sqrt(2 * np.pi))
    rho0 = 4 / a**3
    safe = np.where(r > 0, r, 1.0)
    return np.where(r > 0, rdf / safe - 4 * np.pi * rho0 * r, 0.0)


R = np.round(np.arange(0.0, 40.0, 0.05), 4)
G = np.round(fcc_gr(R), 6)


def rows(r=R, g=G, fmt="{:.4f} {:.6f}", sep="\n"):
    return sep.join(fmt.format(a, b) for a, b in zip(r, g)) + sep


def write(name, content):
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    (HERE / name).write_bytes(data)


def main():
    header = "[PDF]\nqmax = 25.0\ncomposition = NiO\nmode = xray\n\n#### start data\n#S 1\n#L r G\n"
    write("empty.gr", "")
    write("whitespace_only.gr", "   \n\n\t\n")
    write("header_only.gr", header)
    write("one_column.gr", "\n".join(f"{x:.4f}" for x in G) + "\n")
    write("text_garbage.gr", "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n" * 20)
    write("html_error_page.gr", "<html><head><title>404 Not Found</title></head>\n<body>Not Found</body></html>\n")
    write("binary.gr", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    write("gzipped.gr", gzip.compress(rows().encode(), mtime=0))
    g_nan = G.copy()
    g_nan[[5, 300, 301]] = np.nan
    write("nan_values.gr", rows(g=g_nan))
    g_inf = G.copy()
    g_inf[[100, 400]] = [np.inf, -np.inf]
    write("inf_values.gr", rows(g=g_inf))
    write("all_nan.gr", rows(g=np.full_like(G, np.nan)))
    write("constant_g.gr", rows(g=np.full_like(G, 0.25)))
    write("all_zero_g.gr", rows(g=np.zeros_like(G)))
    write("reversed_r.gr", rows(R[::-1], G[::-1]))
    order = np.random.default_rng(1).permutation(R.size)
    write("unsorted_r.gr", rows(R[order], G[order]))
    write("duplicated_r.gr", rows(np.repeat(R, 2), np.repeat(G, 2)))
    rn = np.round(np.arange(-5.0, 40.0, 0.05), 4)
    write("negative_r.gr", rows(rn, np.round(fcc_gr(rn), 6)))
    short = R <= 12.0
    write("short_range.gr", rows(R[short], G[short]))
    rb = np.arange(35.0, 60.0, 0.05)
    write("beyond_range.gr", rows(rb, np.sin(rb)))
    write("two_points.gr", "1.0 0.5\n2.0 -0.5\n")
    write("single_row_many_numbers.gr", " ".join(str(x) for x in range(50)) + "\n")
    write("huge_values.gr", rows(g=G * 1e305, fmt="{:.4f} {:.6e}"))
    write("comma_separated.gr", "r,G\n" + rows(fmt="{:.4f},{:.6f}"))
    write("semicolon_separated.gr", rows(fmt="{:.4f};{:.6f}"))
    write("tab_separated.gr", rows(fmt="{:.4f}\t{:.6f}"))
    write("extra_columns.gr", header + rows(fmt="{:.4f} {:.6f} 0.0 0.001"))
    write("crlf_line_ends.gr", (header + rows()).replace("\n", "\r\n"))
    write("latin1_header.gr", ("# Probe: Å-Scan, sample \u00e9chantillon\n" + header + rows()).encode("latin-1"))
    write("utf8_bom.gr", b"\xef\xbb\xbf" + (header + rows()).encode("utf-8"))
    write("still_being_written.gr", header + rows()[:-9])  # last line cut inside a number
    cut = int(np.searchsorted(R, 15.0))
    write("garbage_mid_data.gr", rows(R[:cut], G[:cut]) + "ERROR: detector saturated\n" + rows(R[cut:], G[cut:]))
    write("fortran_d_exponents.gr", rows(fmt="{:.4f} {:.6e}").replace("e", "D"))
    write("upper_e_exponents.gr", rows(fmt="{:.4E} {:.6E}"))
    write("mac_cr_line_ends.gr", (header + rows()).replace("\n", "\r"))
    write("utf16_bom.gr", (header + rows()).encode("utf-16"))  # Windows "Unicode": little-endian with BOM
    write("decimal_commas.gr", header + rows().replace(".", ","))
    write("nul_byte_in_header.gr", "# exported by \x00 instrument\n" + header + rows())


if __name__ == "__main__":
    main()
