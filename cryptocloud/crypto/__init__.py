"""The vHSM's cryptography: key specs, SM2 over OpenSSL, key wrapping.

Nothing is imported here so that ``import cryptocloud.crypto`` stays cheap;
import the submodule you need (``keyspec``, ``sm2``, ``digest``,
``wrapping``).
"""
