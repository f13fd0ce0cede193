"""A small ctypes binding to the system OpenSSL 3 libcrypto, for SM2 only.

``cryptography`` has no SM2 and will not add it, so the vHSM calls OpenSSL's
EVP interface directly.  The library is loaded with ``ctypes.CDLL``, which
releases the GIL during every foreign call: the vHSM signs on several
threads and the signatures then run in parallel.

Every OpenSSL object is freed in a ``finally`` block, every return code is
checked, and OpenSSL's per-thread error queue is cleared before and after
each operation so that a failure never leaks into the next call.  Error
messages carry OpenSSL's reason text only, never data or key material.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from cryptocloud.common import exception

# Selections for OSSL_ENCODER/OSSL_DECODER (EVP_PKEY_KEYPAIR and
# EVP_PKEY_PUBLIC_KEY in <openssl/evp.h>): key plus its domain parameters.
_SELECT_KEYPAIR = 0x87
_SELECT_PUBLIC_KEY = 0x86

SM2_KEY_TYPE = b'SM2'
SM3_DIGEST_SIZE = 32
# DER SEQUENCE{INTEGER r, INTEGER s} with 256-bit r and s is at most 72
# bytes; a little slack costs nothing.
_MAX_SIGNATURE_SIZE = 80
# GB/T 32918's default signer ID, used when the caller gives none.
DEFAULT_USER_ID = b'1234567812345678'
_TEMPLATE_LOCK = threading.Lock()

_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_c_int = ctypes.c_int
_c_size_t = ctypes.c_size_t
_c_ulong = ctypes.c_ulong
_c_buf = ctypes.POINTER(ctypes.c_ubyte)

# name -> (restype, argtypes); declared once so ctypes converts arguments
# strictly (a missing argtype silently truncates pointers to int).
_PROTOTYPES: dict[str, tuple] = {
    'OpenSSL_version_num': (_c_ulong, []),
    'ERR_get_error': (_c_ulong, []),
    'ERR_clear_error': (None, []),
    'ERR_error_string_n': (None, [_c_ulong, _c_char_p, _c_size_t]),
    'CRYPTO_free': (None, [_c_void_p, _c_char_p, _c_int]),
    'CRYPTO_clear_free': (None, [_c_void_p, _c_size_t, _c_char_p, _c_int]),
    'EVP_sm3': (_c_void_p, []),
    'EVP_PKEY_free': (None, [_c_void_p]),
    'EVP_PKEY_is_a': (_c_int, [_c_void_p, _c_char_p]),
    'EVP_PKEY_get_bits': (_c_int, [_c_void_p]),
    'EVP_PKEY_get_bn_param': (_c_int, [_c_void_p, _c_char_p,
                                       ctypes.POINTER(_c_void_p)]),
    'EVP_PKEY_get_octet_string_param': (
        _c_int, [_c_void_p, _c_char_p, _c_buf, _c_size_t,
                 ctypes.POINTER(_c_size_t)]),
    'BN_bn2binpad': (_c_int, [_c_void_p, _c_buf, _c_int]),
    'BN_clear_free': (None, [_c_void_p]),
    'EVP_PKEY_CTX_new_from_name': (_c_void_p, [_c_void_p, _c_char_p,
                                               _c_char_p]),
    'EVP_PKEY_CTX_new_from_pkey': (_c_void_p, [_c_void_p, _c_void_p,
                                               _c_char_p]),
    'EVP_PKEY_CTX_free': (None, [_c_void_p]),
    'EVP_PKEY_CTX_set1_id': (_c_int, [_c_void_p, _c_char_p, _c_int]),
    'EVP_PKEY_keygen_init': (_c_int, [_c_void_p]),
    'EVP_PKEY_check': (_c_int, [_c_void_p]),
    'EVP_PKEY_public_check': (_c_int, [_c_void_p]),
    'EVP_PKEY_generate': (_c_int, [_c_void_p, ctypes.POINTER(_c_void_p)]),
    'EVP_PKEY_sign_init': (_c_int, [_c_void_p]),
    'EVP_PKEY_sign': (_c_int, [_c_void_p, _c_buf, ctypes.POINTER(_c_size_t),
                               _c_char_p, _c_size_t]),
    'EVP_PKEY_verify_init': (_c_int, [_c_void_p]),
    'EVP_PKEY_verify': (_c_int, [_c_void_p, _c_char_p, _c_size_t,
                                 _c_char_p, _c_size_t]),
    'EVP_PKEY_encrypt_init': (_c_int, [_c_void_p]),
    'EVP_PKEY_encrypt': (_c_int, [_c_void_p, _c_buf,
                                  ctypes.POINTER(_c_size_t), _c_char_p,
                                  _c_size_t]),
    'EVP_PKEY_decrypt_init': (_c_int, [_c_void_p]),
    'EVP_PKEY_decrypt': (_c_int, [_c_void_p, _c_buf,
                                  ctypes.POINTER(_c_size_t), _c_char_p,
                                  _c_size_t]),
    'EVP_MD_CTX_new': (_c_void_p, []),
    'EVP_MD_CTX_free': (None, [_c_void_p]),
    'EVP_MD_CTX_copy_ex': (_c_int, [_c_void_p, _c_void_p]),
    'EVP_MD_CTX_set_pkey_ctx': (None, [_c_void_p, _c_void_p]),
    'EVP_DigestSignInit': (_c_int, [_c_void_p, _c_void_p, _c_void_p,
                                    _c_void_p, _c_void_p]),
    'EVP_DigestSign': (_c_int, [_c_void_p, _c_buf, ctypes.POINTER(_c_size_t),
                                _c_char_p, _c_size_t]),
    'EVP_DigestVerifyInit': (_c_int, [_c_void_p, _c_void_p, _c_void_p,
                                      _c_void_p, _c_void_p]),
    'EVP_DigestVerify': (_c_int, [_c_void_p, _c_char_p, _c_size_t,
                                  _c_char_p, _c_size_t]),
    'OSSL_ENCODER_CTX_new_for_pkey': (_c_void_p, [_c_void_p, _c_int,
                                                  _c_char_p, _c_char_p,
                                                  _c_char_p]),
    'OSSL_ENCODER_CTX_free': (None, [_c_void_p]),
    'OSSL_ENCODER_to_data': (_c_int, [_c_void_p, ctypes.POINTER(_c_void_p),
                                      ctypes.POINTER(_c_size_t)]),
    'OSSL_DECODER_CTX_new_for_pkey': (
        _c_void_p, [ctypes.POINTER(_c_void_p), _c_char_p, _c_char_p,
                    _c_char_p, _c_int, _c_void_p, _c_char_p]),
    'OSSL_DECODER_CTX_free': (None, [_c_void_p]),
    'OSSL_DECODER_CTX_get_num_decoders': (_c_int, [_c_void_p]),
    'OSSL_DECODER_from_data': (_c_int, [_c_void_p,
                                        ctypes.POINTER(_c_void_p),
                                        ctypes.POINTER(_c_size_t)]),
}


class _Lib:
    """The loaded library with prototypes applied, or the reason it failed."""

    def __init__(self) -> None:
        self.lib = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def get(self):
        if self.lib is not None:
            return self.lib
        with self._lock:
            if self.lib is None and self.error is None:
                self._load()
        if self.lib is None:
            raise exception.CryptoBackendError(reason=self.error)
        return self.lib

    def _load(self) -> None:
        candidates = []
        found = ctypes.util.find_library('crypto')
        if found:
            candidates.append(found)
        candidates.append('libcrypto.so.3')
        lib = None
        for name in candidates:
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            self.error = 'libcrypto (OpenSSL 3) could not be loaded'
            return
        try:
            for fname, (restype, argtypes) in _PROTOTYPES.items():
                func = getattr(lib, fname)
                func.restype = restype
                func.argtypes = argtypes
        except AttributeError as exc:
            self.error = ('libcrypto lacks %s; OpenSSL 3.0 or newer is '
                          'required' % exc.args[0].split(':')[-1].strip())
            return
        if lib.OpenSSL_version_num() < 0x30000000:
            self.error = 'OpenSSL 3.0 or newer is required'
            return
        self.lib = lib


_LIB = _Lib()


def _lib():
    return _LIB.get()


def _drain_errors(lib) -> str:
    """Return OpenSSL's first queued reason and empty the queue."""
    first = lib.ERR_get_error()
    while lib.ERR_get_error():
        pass
    if not first:
        return 'no further detail'
    buf = ctypes.create_string_buffer(256)
    lib.ERR_error_string_n(first, buf, len(buf))
    return buf.value.decode('ascii', 'replace')


class OpenSSLError(exception.CryptoCloudException):
    """An OpenSSL call failed; the message names the call, never data."""

    msg_fmt = 'OpenSSL %(call)s failed: %(detail)s'


def _fail(lib, call: str):
    return OpenSSLError(call=call, detail=_drain_errors(lib))


def _check(lib, ret: int, call: str) -> None:
    if ret != 1:
        raise _fail(lib, call)


class PKey:
    """Owns one EVP_PKEY; safe to use from several threads at once.

    OpenSSL 3 keys are read-only once built, and every operation below takes
    its own reference through a fresh EVP_PKEY_CTX, so no lock is needed.
    """

    __slots__ = ('_ptr', '_lib', '_sign_template', '__weakref__')

    def __init__(self, ptr: int) -> None:
        self._lib = _lib()
        self._ptr = ptr
        self._sign_template = None

    @property
    def ptr(self) -> int:
        """The raw EVP_PKEY pointer; raises if the key was freed."""
        if not self._ptr:
            raise OpenSSLError(call='EVP_PKEY use', detail='key was freed')
        return self._ptr

    def sign_template(self) -> int:
        """A signing context set up once for the default user ID.

        Setting up a DigestSign context (key context, user ID, fetching
        SM3 and the signature) costs about a tenth of a signature in
        OpenSSL 3.0; copying a ready one costs next to nothing.  Only the
        default ID is kept, so caller-chosen IDs cannot grow memory.
        """
        if self._sign_template is None:
            with _TEMPLATE_LOCK:
                if self._sign_template is None:
                    self._sign_template = _digest_ctx(
                        self._lib, self, DEFAULT_USER_ID, verify_mode=False)
        return self._sign_template[0]

    def free(self) -> None:
        """Release the EVP_PKEY now rather than at garbage collection."""
        template, self._sign_template = self._sign_template, None
        if template:
            self._lib.EVP_MD_CTX_free(template[0])
            self._lib.EVP_PKEY_CTX_free(template[1])
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._lib.EVP_PKEY_free(ptr)

    def __del__(self) -> None:
        # During interpreter shutdown the library may already be gone.
        try:
            self.free()
        except Exception:  # noqa: S110 - nothing useful can be done here
            pass


def check_backend() -> None:
    """Raise CryptoBackendError unless libcrypto can do SM2 with SM3."""
    lib = _lib()
    lib.ERR_clear_error()
    if not lib.EVP_sm3():
        lib.ERR_clear_error()
        raise exception.CryptoBackendError(
            reason='libcrypto has no SM3 digest')
    try:
        key = generate_sm2()
        message = b'cryptocloud backend self-test'
        sig = sign(key, message, b'1234567812345678')
        if not verify(key, sig, message, b'1234567812345678'):
            raise exception.CryptoBackendError(
                reason='SM2 self-test signature did not verify')
        if verify(key, sig, message, b'8765432187654321'):
            raise exception.CryptoBackendError(
                reason='libcrypto ignores the SM2 user ID')
        ct = encrypt(key, message)
        if decrypt(key, ct) != message:
            raise exception.CryptoBackendError(
                reason='SM2 self-test decryption mismatch')
        key.free()
    except OpenSSLError as exc:
        raise exception.CryptoBackendError(
            reason='SM2 is not usable in libcrypto (%s)' % exc.message
        ) from None


def generate_sm2() -> PKey:
    """Generate a new SM2 key pair."""
    lib = _lib()
    lib.ERR_clear_error()
    ctx = lib.EVP_PKEY_CTX_new_from_name(None, SM2_KEY_TYPE, None)
    if not ctx:
        raise _fail(lib, 'EVP_PKEY_CTX_new_from_name(SM2)')
    try:
        _check(lib, lib.EVP_PKEY_keygen_init(ctx), 'EVP_PKEY_keygen_init')
        out = _c_void_p()
        _check(lib, lib.EVP_PKEY_generate(ctx, ctypes.byref(out)),
               'EVP_PKEY_generate')
        return PKey(out.value)
    finally:
        lib.EVP_PKEY_CTX_free(ctx)


def _pkey_ctx(lib, key: PKey) -> int:
    ctx = lib.EVP_PKEY_CTX_new_from_pkey(None, key.ptr, None)
    if not ctx:
        raise _fail(lib, 'EVP_PKEY_CTX_new_from_pkey')
    return ctx


def _digest_ctx(lib, key: PKey, user_id: bytes, verify_mode: bool):
    """Build an EVP_MD_CTX for SM2-with-SM3 that uses ``user_id`` in Z.

    The ID has to sit on the key context before DigestSign/VerifyInit; OpenSSL
    3.0 otherwise hashes an empty ID into Z, which other SM2 implementations
    reject.  Returns (md_ctx, pkey_ctx); the caller frees both.
    """
    mctx = lib.EVP_MD_CTX_new()
    if not mctx:
        raise _fail(lib, 'EVP_MD_CTX_new')
    pctx = None
    try:
        pctx = _pkey_ctx(lib, key)
        _check(lib, lib.EVP_PKEY_CTX_set1_id(pctx, user_id, len(user_id)),
               'EVP_PKEY_CTX_set1_id')
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        init = (lib.EVP_DigestVerifyInit if verify_mode
                else lib.EVP_DigestSignInit)
        _check(lib, init(mctx, None, lib.EVP_sm3(), None, key.ptr),
               'EVP_DigestVerifyInit' if verify_mode
               else 'EVP_DigestSignInit')
    except BaseException:
        lib.EVP_MD_CTX_free(mctx)
        if pctx:
            lib.EVP_PKEY_CTX_free(pctx)
        raise
    return mctx, pctx


def _digest_sign(lib, mctx, message: bytes) -> bytes:
    out = (ctypes.c_ubyte * _MAX_SIGNATURE_SIZE)()
    outlen = _c_size_t(len(out))
    _check(lib, lib.EVP_DigestSign(mctx, out, ctypes.byref(outlen),
                                   message, len(message)),
           'EVP_DigestSign')
    return bytes(out[:outlen.value])


def sign(key: PKey, message: bytes, user_id: bytes) -> bytes:
    """Sign SM3(Z||message) with SM2; returns DER SEQUENCE{r, s}."""
    lib = _lib()
    lib.ERR_clear_error()
    if user_id == DEFAULT_USER_ID:
        mctx = lib.EVP_MD_CTX_new()
        if not mctx:
            raise _fail(lib, 'EVP_MD_CTX_new')
        try:
            # The copy owns duplicates of the template's contexts.
            _check(lib, lib.EVP_MD_CTX_copy_ex(mctx, key.sign_template()),
                   'EVP_MD_CTX_copy_ex')
            return _digest_sign(lib, mctx, message)
        finally:
            lib.EVP_MD_CTX_free(mctx)
    mctx, pctx = _digest_ctx(lib, key, user_id, verify_mode=False)
    try:
        return _digest_sign(lib, mctx, message)
    finally:
        # The MD context does not own a context given by set_pkey_ctx.
        lib.EVP_MD_CTX_free(mctx)
        lib.EVP_PKEY_CTX_free(pctx)


def verify(key: PKey, signature: bytes, message: bytes,
           user_id: bytes) -> bool:
    """Check a DER SM2 signature over SM3(Z||message)."""
    lib = _lib()
    lib.ERR_clear_error()
    mctx, pctx = _digest_ctx(lib, key, user_id, verify_mode=True)
    try:
        ret = lib.EVP_DigestVerify(mctx, signature, len(signature),
                                   message, len(message))
        # 0 is "bad signature", < 0 "malformed"; both are just "invalid".
        return ret == 1
    finally:
        lib.ERR_clear_error()
        lib.EVP_MD_CTX_free(mctx)
        lib.EVP_PKEY_CTX_free(pctx)


def sign_digest(key: PKey, e: bytes) -> bytes:
    """Sign a pre-computed e = SM3(Z||M) (32 bytes); returns DER."""
    if len(e) != SM3_DIGEST_SIZE:
        raise exception.InvalidInput(
            reason='an SM2 digest must be %d bytes' % SM3_DIGEST_SIZE)
    lib = _lib()
    lib.ERR_clear_error()
    ctx = _pkey_ctx(lib, key)
    try:
        _check(lib, lib.EVP_PKEY_sign_init(ctx), 'EVP_PKEY_sign_init')
        out = (ctypes.c_ubyte * _MAX_SIGNATURE_SIZE)()
        outlen = _c_size_t(len(out))
        _check(lib, lib.EVP_PKEY_sign(ctx, out, ctypes.byref(outlen),
                                      e, len(e)),
               'EVP_PKEY_sign')
        return bytes(out[:outlen.value])
    finally:
        lib.EVP_PKEY_CTX_free(ctx)


def verify_digest(key: PKey, signature: bytes, e: bytes) -> bool:
    """Check a DER SM2 signature over a pre-computed 32-byte e."""
    if len(e) != SM3_DIGEST_SIZE:
        raise exception.InvalidInput(
            reason='an SM2 digest must be %d bytes' % SM3_DIGEST_SIZE)
    lib = _lib()
    lib.ERR_clear_error()
    ctx = _pkey_ctx(lib, key)
    try:
        _check(lib, lib.EVP_PKEY_verify_init(ctx), 'EVP_PKEY_verify_init')
        return lib.EVP_PKEY_verify(ctx, signature, len(signature),
                                   e, len(e)) == 1
    finally:
        lib.ERR_clear_error()
        lib.EVP_PKEY_CTX_free(ctx)


def encrypt(key: PKey, plaintext: bytes) -> bytes:
    """SM2-encrypt; returns OpenSSL's DER SEQUENCE{x, y, C3, C2}."""
    lib = _lib()
    lib.ERR_clear_error()
    ctx = _pkey_ctx(lib, key)
    try:
        _check(lib, lib.EVP_PKEY_encrypt_init(ctx), 'EVP_PKEY_encrypt_init')
        outlen = _c_size_t(0)
        _check(lib, lib.EVP_PKEY_encrypt(ctx, None, ctypes.byref(outlen),
                                         plaintext, len(plaintext)),
               'EVP_PKEY_encrypt')
        out = (ctypes.c_ubyte * outlen.value)()
        _check(lib, lib.EVP_PKEY_encrypt(ctx, out, ctypes.byref(outlen),
                                         plaintext, len(plaintext)),
               'EVP_PKEY_encrypt')
        return bytes(out[:outlen.value])
    finally:
        lib.EVP_PKEY_CTX_free(ctx)


def decrypt(key: PKey, ciphertext: bytes) -> bytes:
    """SM2-decrypt DER SEQUENCE{x, y, C3, C2}; raises DecryptionFailed."""
    lib = _lib()
    lib.ERR_clear_error()
    ctx = _pkey_ctx(lib, key)
    out = None
    outlen = _c_size_t(0)
    try:
        _check(lib, lib.EVP_PKEY_decrypt_init(ctx), 'EVP_PKEY_decrypt_init')
        if lib.EVP_PKEY_decrypt(ctx, None, ctypes.byref(outlen),
                                ciphertext, len(ciphertext)) != 1:
            raise exception.DecryptionFailed()
        out = (ctypes.c_ubyte * max(outlen.value, 1))()
        if lib.EVP_PKEY_decrypt(ctx, out, ctypes.byref(outlen),
                                ciphertext, len(ciphertext)) != 1:
            raise exception.DecryptionFailed()
        return bytes(out[:outlen.value])
    finally:
        lib.ERR_clear_error()
        lib.EVP_PKEY_CTX_free(ctx)
        if out is not None:
            # Do not leave a plaintext copy in the ctypes buffer.
            ctypes.memset(out, 0, len(out))


def _encode(key: PKey, selection: int, output_type: bytes,
            structure: bytes, secret: bool) -> bytes:
    lib = _lib()
    lib.ERR_clear_error()
    ctx = lib.OSSL_ENCODER_CTX_new_for_pkey(key.ptr, selection, output_type,
                                            structure, None)
    if not ctx:
        raise _fail(lib, 'OSSL_ENCODER_CTX_new_for_pkey')
    data = _c_void_p()
    size = _c_size_t(0)
    try:
        _check(lib, lib.OSSL_ENCODER_to_data(ctx, ctypes.byref(data),
                                             ctypes.byref(size)),
               'OSSL_ENCODER_to_data')
        return ctypes.string_at(data.value, size.value)
    finally:
        if data.value:
            if secret:
                lib.CRYPTO_clear_free(data.value, size.value, None, 0)
            else:
                lib.CRYPTO_free(data.value, None, 0)
        lib.OSSL_ENCODER_CTX_free(ctx)


def _consistent(lib, key: PKey, selection: int) -> bool:
    """Check the point is on the curve and, for a key pair, that d*G = P.

    The decoder accepts a PKCS#8 whose stored public key does not belong to
    the private scalar; SM2 hashes that public key into Z, so such a key
    would make signatures nobody can verify.
    """
    ctx = _pkey_ctx(lib, key)
    try:
        if selection == _SELECT_KEYPAIR:
            return lib.EVP_PKEY_check(ctx) == 1
        return lib.EVP_PKEY_public_check(ctx) == 1
    finally:
        lib.ERR_clear_error()
        lib.EVP_PKEY_CTX_free(ctx)


def _decode(data: bytes, input_type: bytes, structure: bytes,
            selection: int) -> PKey:
    """Decode a key, insisting on type SM2 so SM2 operations apply."""
    lib = _lib()
    lib.ERR_clear_error()
    out = _c_void_p()
    ctx = lib.OSSL_DECODER_CTX_new_for_pkey(
        ctypes.byref(out), input_type, structure, SM2_KEY_TYPE, selection,
        None, None)
    if not ctx:
        raise _fail(lib, 'OSSL_DECODER_CTX_new_for_pkey')
    buf = ctypes.create_string_buffer(data, len(data))
    try:
        if lib.OSSL_DECODER_CTX_get_num_decoders(ctx) < 1:
            raise _fail(lib, 'OSSL_DECODER_CTX_new_for_pkey (no decoder)')
        ptr = _c_void_p(ctypes.addressof(buf))
        left = _c_size_t(len(data))
        ok = lib.OSSL_DECODER_from_data(ctx, ctypes.byref(ptr),
                                        ctypes.byref(left))
        if ok != 1 or not out.value:
            lib.ERR_clear_error()
            raise exception.InvalidInput(
                reason='the data is not an SM2 key in the expected format')
        key = PKey(out.value)
        out.value = None
        if (left.value != 0
                or lib.EVP_PKEY_is_a(key.ptr, SM2_KEY_TYPE) != 1
                or not _consistent(lib, key, selection)):
            key.free()
            raise exception.InvalidInput(
                reason='the data is not an SM2 key in the expected format')
        return key
    finally:
        lib.ERR_clear_error()
        if out.value:
            lib.EVP_PKEY_free(out.value)
        lib.OSSL_DECODER_CTX_free(ctx)
        ctypes.memset(buf, 0, len(data))


def private_to_pkcs8_der(key: PKey) -> bytes:
    """Serialize the private key as unencrypted PKCS#8 DER."""
    return _encode(key, _SELECT_KEYPAIR, b'DER', b'PrivateKeyInfo', True)


def private_from_pkcs8_der(data: bytes) -> PKey:
    """Load an SM2 private key from PKCS#8 DER."""
    return _decode(data, b'DER', b'PrivateKeyInfo', _SELECT_KEYPAIR)


def public_to_spki(key: PKey, pem: bool = False) -> bytes:
    """Serialize the public key as SubjectPublicKeyInfo (DER or PEM)."""
    return _encode(key, _SELECT_PUBLIC_KEY, b'PEM' if pem else b'DER',
                   b'SubjectPublicKeyInfo', False)


def public_from_spki(data: bytes, pem: bool = False) -> PKey:
    """Load an SM2 public key from SubjectPublicKeyInfo (DER or PEM)."""
    return _decode(data, b'PEM' if pem else b'DER', b'SubjectPublicKeyInfo',
                   _SELECT_PUBLIC_KEY)


def public_point(key: PKey) -> bytes:
    """The uncompressed public point 04||x||y (65 bytes)."""
    lib = _lib()
    lib.ERR_clear_error()
    buf = (ctypes.c_ubyte * 133)()
    size = _c_size_t(0)
    _check(lib, lib.EVP_PKEY_get_octet_string_param(
        key.ptr, b'encoded-pub-key', buf, len(buf), ctypes.byref(size)),
        'EVP_PKEY_get_octet_string_param(encoded-pub-key)')
    return bytes(buf[:size.value])


def private_scalar(key: PKey) -> bytes:
    """The private scalar d as 32 big-endian bytes."""
    lib = _lib()
    lib.ERR_clear_error()
    bn = _c_void_p()
    _check(lib, lib.EVP_PKEY_get_bn_param(key.ptr, b'priv',
                                          ctypes.byref(bn)),
           'EVP_PKEY_get_bn_param(priv)')
    buf = (ctypes.c_ubyte * 32)()
    try:
        if lib.BN_bn2binpad(bn, buf, len(buf)) != len(buf):
            raise _fail(lib, 'BN_bn2binpad')
        return bytes(buf)
    finally:
        lib.BN_clear_free(bn)
        ctypes.memset(buf, 0, len(buf))
