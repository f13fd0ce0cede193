"""Strict DER helpers for SM2 ciphertexts and signatures."""

import hypothesis
import testtools
from hypothesis import strategies as st

from cryptocloud.common import exception
from cryptocloud.crypto import der

coord = st.binary(min_size=32, max_size=32)


class TestCiphertext(testtools.TestCase):

    @hypothesis.given(coord, coord, st.binary(min_size=32, max_size=32),
                      st.binary(min_size=1, max_size=300))
    def test_round_trips(self, x, y, c3, c2):
        encoded = der.encode_sm2_ciphertext(x, y, c3, c2)
        self.assertEqual((x, y, c3, c2), der.decode_sm2_ciphertext(encoded))
        c1c3c2 = der.ciphertext_der_to_raw(encoded, 'c1c3c2')
        c1c2c3 = der.ciphertext_der_to_raw(encoded, 'c1c2c3')
        self.assertEqual(b'\x04' + x + y + c3 + c2, c1c3c2)
        self.assertEqual(b'\x04' + x + y + c2 + c3, c1c2c3)
        self.assertEqual(encoded, der.ciphertext_raw_to_der(c1c3c2, 'c1c3c2'))
        self.assertEqual(encoded, der.ciphertext_raw_to_der(c1c2c3, 'c1c2c3'))
        self.assertEqual(encoded, der.ciphertext_raw_to_der(encoded, 'der'))

    @hypothesis.given(st.binary(max_size=200))
    def test_garbage_raises_only_decryption_failed(self, data):
        for fmt in der.CIPHERTEXT_FORMATS:
            try:
                der.ciphertext_raw_to_der(data, fmt)
            except exception.DecryptionFailed:
                pass

    def test_rejects_non_canonical(self):
        good = der.encode_sm2_ciphertext(b'\x01' * 32, b'\x02' * 32,
                                         b'\x03' * 32, b'hi')
        cases = [
            good + b'\x00',                          # trailing byte
            good[:-1],                               # truncated
            b'\x30\x81' + good[1:2] + good[2:],      # long-form short length
            b'\x31' + good[1:],                      # SET, not SEQUENCE
            der.encode_sequence(                     # padded INTEGER
                der.encode_tlv(der.TAG_INTEGER, b'\x00\x01'),
                der.encode_integer(2),
                der.encode_octet_string(b'\x03' * 32),
                der.encode_octet_string(b'hi')),
            der.encode_sm2_ciphertext(b'\x01' * 32, b'\x02' * 32,
                                      b'\x03' * 31, b'hi'),   # short C3
            der.encode_sm2_ciphertext(b'\x01' * 32, b'\x02' * 32,
                                      b'\x03' * 32, b''),     # empty C2
            der.encode_sequence(                     # negative x
                der.encode_tlv(der.TAG_INTEGER, b'\xff'),
                der.encode_integer(2),
                der.encode_octet_string(b'\x03' * 32),
                der.encode_octet_string(b'hi')),
            der.encode_sequence(                     # x over 256 bits
                der.encode_integer(1 << 256), der.encode_integer(2),
                der.encode_octet_string(b'\x03' * 32),
                der.encode_octet_string(b'hi')),
            b'\x30\x80' + good[2:] + b'\x00\x00',    # BER indefinite
        ]
        for case in cases:
            self.assertRaises(exception.DecryptionFailed,
                              der.decode_sm2_ciphertext, case)

    def test_raw_needs_point_prefix_and_length(self):
        raw = b'\x04' + b'\x01' * 64 + b'\x02' * 32 + b'x'
        der.ciphertext_raw_to_der(raw, 'c1c3c2')
        self.assertRaises(exception.DecryptionFailed,
                          der.ciphertext_raw_to_der, raw[1:] + b'y', 'c1c3c2')
        self.assertRaises(exception.DecryptionFailed,
                          der.ciphertext_raw_to_der, raw[:-1], 'c1c2c3')

    def test_unknown_format(self):
        self.assertRaises(exception.InvalidInput,
                          der.ciphertext_der_to_raw, b'', 'c2c1c3')

    def test_long_lengths(self):
        c2 = b'\xaa' * 1000
        encoded = der.encode_sm2_ciphertext(b'\x80' * 32, b'\x00' * 32,
                                            b'\x01' * 32, c2)
        self.assertEqual(c2, der.decode_sm2_ciphertext(encoded)[3])


class TestSignature(testtools.TestCase):

    @hypothesis.given(st.integers(0, (1 << 256) - 1),
                      st.integers(0, (1 << 256) - 1))
    def test_round_trips(self, r, s):
        encoded = der.encode_signature(r, s)
        self.assertEqual((r, s), der.decode_signature(encoded))
        raw = der.signature_der_to_raw(encoded)
        self.assertEqual(64, len(raw))
        self.assertEqual(encoded, der.signature_raw_to_der(raw))

    @hypothesis.given(st.binary(max_size=90))
    def test_garbage_raises_only_invalid_input(self, data):
        try:
            der.signature_der_to_raw(data)
        except exception.InvalidInput:
            pass

    def test_raw_length(self):
        self.assertRaises(exception.InvalidInput,
                          der.signature_raw_to_der, b'\x01' * 63)

    def test_oversized_value(self):
        self.assertRaises(exception.InvalidInput, der.signature_der_to_raw,
                          der.encode_signature(1 << 256, 1))

    def test_integer_encoding(self):
        self.assertEqual(b'\x02\x01\x00', der.encode_integer(0))
        self.assertEqual(b'\x02\x02\x00\x80', der.encode_integer(128))
        self.assertEqual(b'\x02\x01\x7f', der.encode_integer(127))
