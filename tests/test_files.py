"""jaxgen.files: the one file-digest helper, against hashlib on the whole bytes and a published test vector."""

import hashlib

from jaxgen.files import file_digest, file_sha256


def test_file_sha256_matches_the_fips_vector_and_hashlib_across_chunks(tmp_path):
    abc = tmp_path / "abc"
    abc.write_bytes(b"abc")  # FIPS 180-2 appendix B.1
    assert file_sha256(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big.bin"
    data = bytes(range(256)) * ((1 << 22) // 256 * 2 + 3)  # spans three 4 MiB chunks
    big.write_bytes(data)
    assert file_sha256(big) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(big), "md5") == hashlib.md5(data).hexdigest()
